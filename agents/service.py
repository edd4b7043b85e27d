"""``servegym serve-policy``: a loaded policy answers JSON metrics with a JSON action over HTTP.

For systems not written in Python. ``POST /act`` takes ``{"metrics": {...}}`` (the env's
``info["metrics"]`` keys) or ``{"obs": [...]}``, and optionally ``"action_mask": [...]``;
it answers ``{"action": k}``. ``GET /policy`` describes the policy and the operator's contract
(every metric with unit, shape, valid range and whether it is required; every action's
meaning); ``GET /health`` is a liveness probe. Binds to loopback by default.

Bad input never reaches the encoder: every body is checked first and answered with a 422 whose
``detail`` lists each problem in FastAPI's format (``loc`` names the field, ``msg`` what was
expected), all missing metrics at once. An unexpected exception becomes a JSON 500 carrying a
request id, which the server log shows with the traceback; the connection stays open, so a
client's next request on the same keep-alive connection is answered normally. Every response
carries an ``x-request-id`` header (the client's, if it sent one).
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servegym.metric_spec import MetricsError

from .controller import LearnedController

LOG = logging.getLogger("uvicorn.error")  # uvicorn prints it; a plain logger elsewhere
REQUEST_ID = "x-request-id"


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now_s: float = Field(description="the scrape's time, seconds (e.g. Unix time)")
    ready: int = Field(ge=0, description="replicas serving")
    starting: int = Field(default=0, ge=0, description="replicas in their cold start")
    draining: int = Field(default=0, ge=0, description="replicas being removed")


class ActRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    obs: list[float] | None = Field(default=None, description="an encoded observation")
    metrics: dict[str, Any] | None = Field(
        default=None,
        description="raw metrics (numbers, or lists for per-server values), checked against GET /policy",
    )
    action_mask: list[bool] | None = Field(default=None, description="allowed actions (true = allowed)")
    prometheus: list[str] | None = Field(
        default=None,
        description="autoscaling: every replica's vLLM /metrics text (Prometheus format), with 'fleet'",
    )
    fleet: Fleet | None = Field(
        default=None, description="with 'prometheus': the autoscaler's replica counts"
    )


class ActResponse(BaseModel):
    action: int
    replicas: int | None = Field(default=None, description="autoscaling policies: the replica count to set")


class BadInput(Exception):
    """A request body that fails a check: ``problems`` is a list of (location, message)."""

    def __init__(self, problems: list[tuple[list[str | int], str]]) -> None:
        super().__init__(problems)
        self.problems = problems


def create_app(controller: LearnedController) -> FastAPI:
    meta = controller.metadata
    if controller.contract is None:
        raise ValueError("the controller has no env contract (load it with LearnedController.load)")
    contract = controller.contract
    lock = threading.Lock()  # FastAPI runs sync endpoints in a thread pool; a controller is not thread-safe
    app = FastAPI(title="servegym policy", description=f"{controller.name} for {meta.env_id}")
    app.add_middleware(ErrorsAsJson)

    @app.exception_handler(BadInput)
    def bad_input(_request, err: BadInput) -> JSONResponse:
        detail = [{"loc": ["body", *loc], "msg": msg, "type": "value_error"} for loc, msg in err.problems]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/policy")
    def policy() -> dict:
        return {
            "name": controller.name,
            "env_id": meta.env_id,
            "algo": meta.algo,
            "obs_size": controller.obs_size,
            "n_actions": meta.n_actions,
            "env_kwargs": meta.env_kwargs,
            "normalized": meta.normalization is not None,
            **contract.describe(),
        }

    @app.post("/act", response_model=ActResponse, response_model_exclude_none=True)
    def act(request: ActRequest) -> ActResponse:
        if request.prometheus is not None:
            return _act_from_scrapes(request)
        if (request.obs is None) == (request.metrics is None):
            one_of = "'obs' (a list of numbers), 'metrics' (an object) and 'prometheus'"
            raise BadInput([([], f"give exactly one of {one_of}")])
        mask = request.action_mask
        if mask is not None and len(mask) != meta.n_actions:
            raise BadInput([(["action_mask"], f"expected {meta.n_actions} booleans, got {len(mask)}")])
        if request.obs is not None:
            obs = request.obs
            if len(obs) != controller.obs_size:
                raise BadInput([(["obs"], f"expected {controller.obs_size} numbers, got {len(obs)}")])
            bad = next((i for i, x in enumerate(obs) if not math.isfinite(x)), None)
            if bad is not None:
                raise BadInput([(["obs", bad], f"must be a finite number, got {obs[bad]}")])
        else:
            try:  # outside the lock: the encoder is a pure function of the metrics (DESIGN.md)
                obs = contract.encode(request.metrics)
            except MetricsError as err:
                raise BadInput([(["metrics", field], message) for field, message in err.problems]) from None
        with lock:
            action = controller.act(obs, None if mask is None else {"action_mask": mask})
        return ActResponse(action=action)

    def _act_from_scrapes(request: ActRequest) -> ActResponse:
        if request.obs is not None or request.metrics is not None or request.fleet is None:
            raise BadInput([([], "'prometheus' goes with 'fleet' and without 'obs' or 'metrics'")])
        if not request.prometheus:
            raise BadInput([(["prometheus"], "expected the /metrics text of every replica, got none")])
        fleet = request.fleet
        with lock:  # the scrape history is shared state
            try:
                action, replicas, _ = controller.act_from_prometheus(
                    request.prometheus, now_s=fleet.now_s, ready=fleet.ready, starting=fleet.starting,
                    draining=fleet.draining,
                )  # fmt: skip
            except MetricsError as err:
                problems = [(["prometheus", field], message) for field, message in err.problems]
                raise BadInput(problems) from None
            except ValueError as err:
                raise BadInput([(["prometheus"], str(err))]) from None
        return ActResponse(action=action, replicas=replicas)

    return app


class ErrorsAsJson:
    """ASGI middleware: an exception the app did not handle becomes a JSON 500 with a request id
    (logged with its traceback) instead of propagating, which would make the server drop the
    keep-alive connection. It sits inside Starlette's ServerErrorMiddleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(REQUEST_ID.encode(), b"").decode("latin-1")[:64] or uuid.uuid4().hex[:16]
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[REQUEST_ID] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            LOG.exception("request %s (%s %s) failed", request_id, scope.get("method"), scope.get("path"))
            if started:  # a response is under way; nothing more can be said on this request
                raise
            response = JSONResponse(
                {"detail": "internal error; the server log has the traceback", "request_id": request_id},
                status_code=500,
                headers={REQUEST_ID: request_id},
            )
            await response(scope, receive, send)


def serve(controller: LearnedController, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(controller), host=host, port=port, log_level="info")
