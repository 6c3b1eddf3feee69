"""``nidaan abdm-sim``: run the ABDM gateway simulator on its own (to try an integration)."""

from __future__ import annotations

from typing import Annotated

import typer


def abdm_sim(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8090,
    otp: Annotated[str, typer.Option(help="The test OTP every flow accepts")] = "123456",
) -> None:
    """Play ABDM (gateway, consent manager, ABHA, a PHR app) on HOST:PORT.

    Point Nidaan at it with NIDAAN_ABDM_ENABLED=true, NIDAAN_ABDM_GATEWAY_URL=
    http://HOST:PORT/api/hiecm, NIDAAN_ABDM_ABHA_URL=http://HOST:PORT/abha/api,
    NIDAAN_ABDM_CLIENT_ID=nidaan-demo, NIDAAN_ABDM_CLIENT_SECRET=nidaan-demo-secret.
    """
    import uvicorn

    from nidaan.simulators.abdm import AbdmSimulator

    simulator = AbdmSimulator(otp=otp)
    typer.echo(f"ABDM simulator on http://{host}:{port}  (test OTP {otp}; API docs at /docs)")
    uvicorn.run(simulator.app, host=host, port=port, log_level="info")
