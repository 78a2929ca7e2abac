"""Name resolution that never blocks the event loop for long."""

from __future__ import annotations

import asyncio
import socket


async def resolve(host: str, port: int, within_seconds: float) -> list[str]:
    """The addresses ``host`` resolves to (the loop's ``getaddrinfo``, in a thread), within ``within_seconds``.

    Raises ``OSError`` when the name does not resolve and ``TimeoutError`` when the resolver is too slow.
    """
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), within_seconds)
    return sorted({str(info[4][0]) for info in infos})
