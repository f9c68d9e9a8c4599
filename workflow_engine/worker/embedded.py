"""The embedded broker: kombu's filesystem transport, with every message written whole before
a consumer can see it.

kombu's own transport creates the message file under its final name and then writes it, while
a consumer moves away any file of that name it finds: it can take one still empty, and the
worker then stops on a message it cannot parse. Here a message is written under a name no
consumer looks for, then renamed into place (a rename within a folder is atomic).
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

SCHEME = "wfe-files"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # kombu's name for a message (consumers take them in this order), kept as it is
        final = os.path.join(
            self.data_folder_out, f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        )
        partial = os.path.join(self.data_folder_out, f".{uuid.uuid4()}.part")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
