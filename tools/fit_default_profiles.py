"""Fit the shipped device profiles and the prior from public measurements.

    python tools/fit_default_profiles.py [--data ../shared/data/vidur]

For every device with measurements under ``--data`` (Vidur's layout: profiling/<gpu>/...,
network/<gpu>_<topology>/...), fit all efficiency parameters starting from the generic
constants (``p`` fitted too), write ``servegym/hardware/profiles/<gpu>.yaml``, then learn the
prior over devices and write ``profiles/prior.yaml``. The package ships these numbers; the
measurement files themselves are not shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from servegym.hardware import (
    GENERIC_PRIOR,
    Prior,
    calibrate,
    get_device,
    learn_prior,
    load_measurements,
)
from servegym.hardware.profiles import save_profile

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "servegym" / "hardware" / "profiles"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "vidur"))
    parser.add_argument("--out", default=str(PROFILES))
    args = parser.parse_args()
    data = load_measurements(args.data)
    print(f"{len(data)} measurements from {len(data.files)} files; skipped: {dict(data.skipped)}")
    bootstrap = Prior(
        mean=GENERIC_PRIOR.mean,
        sigma={**GENERIC_PRIOR.sigma, "p": 0.2},
        provenance=GENERIC_PRIOR.provenance,
    )
    fitted = []
    for name in data.devices():
        records = data.for_device(name)
        device = calibrate(
            get_device(name),
            records,
            bootstrap,
            extra_free=("p",),
            source=f"microsoft/vidur public profiles (MIT licence) for {name}, as in shared/data/vidur",
        )
        path = save_profile(device, Path(args.out) / f"{name}.yaml")
        print(f"{device.name}: wrote {path}; in-sample MAPE {device.provenance['in_sample_mape']}")
        fitted.append(device)
    prior = learn_prior(
        fitted,
        GENERIC_PRIOR,
        source=(
            "tools/fit_default_profiles.py: means fitted on microsoft/vidur profiles of "
            + ", ".join(d.name for d in fitted)
            + "; sigmas from the generic prior while fewer than two devices have data"
        ),
    )
    out = Path(args.out) / "prior.yaml"
    out.write_text(
        "# servegym prior over efficiency parameters (log-space sigma)\n"
        + yaml.safe_dump(prior.to_dict(), sort_keys=False),
        encoding="utf-8",
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
