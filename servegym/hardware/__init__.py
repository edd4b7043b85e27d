"""The calibrated hardware latency model: devices, models, operator and iteration times."""

from .calibration import calibrate, learn_prior
from .catalog import (
    UnknownNameError,
    get_device,
    get_dnn,
    get_model,
    list_devices,
    list_dnns,
    list_models,
    load_catalog_file,
    register_device,
    register_dnn,
    register_model,
)
from .device import Device
from .latency import IterationBatch, LatencyModel
from .measurements import Measurement, MeasurementFileError, MeasurementSet, load_measurements
from .model_spec import DNNLayer, DNNSpec, ModelSpec
from .params import ALL_REDUCE_TOPOLOGIES, GENERIC_PRIOR, Prior, default_prior
from .profiles import load_profile, save_profile

__all__ = [
    "ALL_REDUCE_TOPOLOGIES",
    "GENERIC_PRIOR",
    "DNNLayer",
    "DNNSpec",
    "Device",
    "IterationBatch",
    "LatencyModel",
    "Measurement",
    "MeasurementFileError",
    "MeasurementSet",
    "ModelSpec",
    "Prior",
    "UnknownNameError",
    "calibrate",
    "default_prior",
    "get_device",
    "get_dnn",
    "get_model",
    "learn_prior",
    "list_devices",
    "list_dnns",
    "list_models",
    "load_catalog_file",
    "load_measurements",
    "load_profile",
    "register_device",
    "register_dnn",
    "register_model",
    "save_profile",
]
