"""Publish with django-websocket-redis's own RedisPublisher, as a Django site's server code does.

Usage: ws4redis_publish.py REDIS_PORT FACILITY AUDIENCE TEXT [PREFIX]
AUDIENCE is `broadcast`, `user:NAME`, `group:NAME` or `session:KEY`; PREFIX the site's
WS4REDIS_PREFIX. Needs the virtual environment of scripts/ws4redis-deps.sh.
"""

import sys

from django.conf import settings

port, facility, audience, text = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else None
settings.configure(
    WS4REDIS_CONNECTION={"host": "127.0.0.1", "port": int(port), "db": 0, "password": None},
    WS4REDIS_PREFIX=prefix,
    WS4REDIS_EXPIRE=3600,
)

# Imported after the settings: ws4redis reads them (and opens its connection pool) on import.
from ws4redis.publisher import RedisPublisher  # noqa: E402
from ws4redis.redis_store import RedisMessage  # noqa: E402

if audience == "broadcast":
    publisher = RedisPublisher(facility=facility, broadcast=True)
else:
    kind, name = audience.split(":", 1)
    publisher = RedisPublisher(facility=facility, **{kind + "s": [name]})
publisher.publish_message(RedisMessage(text))
print("published", audience, "on", facility)
