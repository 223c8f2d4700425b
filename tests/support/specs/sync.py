from tests.support.drivers import DriverSpec

ORDER = 0
SPECS = [DriverSpec("sync", "queue_core.drivers.sync:SyncDriver",
                    lambda tmp, channel: {"driver": "sync://", "channel": channel})]
