import os

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a test's Ray stays on 127.0.0.1 (read on import)

from support import run_cli, topology_file  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for every ray-mode test of the session (starting one takes seconds), on
    127.0.0.1 only; runs in ray mode find it initialized and leave it running."""
    ray = pytest.importorskip("ray")
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False,
             num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_for_ray_mode(request):
    """Tests parametrized with mode "ray" get the shared Ray started first."""
    params = getattr(request.node, "callspec", None)
    if params is not None and params.params.get("mode") == "ray":
        request.getfixturevalue("ray_cluster")
