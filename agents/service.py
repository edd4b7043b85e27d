"""``servegym serve-policy``: a loaded policy answers JSON metrics with a JSON action over HTTP.

For systems not written in Python. ``POST /act`` takes ``{"metrics": {...}}`` (the env's
``info["metrics"]`` keys) or ``{"obs": [...]}``, and optionally ``"action_mask": [...]``;
it answers ``{"action": k}``. Bad input gets a 4xx with a message; ``GET /policy`` describes
the policy, ``GET /health`` is a liveness probe. Binds to loopback by default.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from .controller import LearnedController


class ActRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    obs: list[float] | None = Field(default=None, description="an encoded observation")
    metrics: dict[str, float | list[float] | list[list[float]]] | None = Field(
        default=None, description="raw metrics (numbers, or lists for per-server values), encoded by the env"
    )
    action_mask: list[bool] | None = Field(default=None, description="allowed actions (true = allowed)")


class ActResponse(BaseModel):
    action: int


def create_app(controller: LearnedController) -> FastAPI:
    meta = controller.metadata
    lock = threading.Lock()  # FastAPI runs sync endpoints in a thread pool; a controller is not thread-safe
    app = FastAPI(title="servegym policy", description=f"{controller.name} for {meta.env_id}")

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
        }

    @app.post("/act", response_model=ActResponse)
    def act(request: ActRequest) -> ActResponse:
        if (request.obs is None) == (request.metrics is None):
            raise HTTPException(
                400, "give exactly one of 'obs' (a list of numbers) and 'metrics' (an object)"
            )
        try:
            with lock:
                if request.obs is not None:
                    mask = request.action_mask
                    action = controller.act(request.obs, None if mask is None else {"action_mask": mask})
                else:
                    action = controller.act_from_metrics(request.metrics, request.action_mask)
        except ValueError as err:
            raise HTTPException(400, str(err)) from err
        return ActResponse(action=action)

    return app


def serve(controller: LearnedController, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(controller), host=host, port=port, log_level="info")
