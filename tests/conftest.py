import os

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a test's Ray stays on 127.0.0.1 (read on import)

from support import run_cli, topology_file  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray for every ray-mode test of the session (starting one takes seconds), on
    127.0.0.1 only; runs in ray mode find it initialized and leave it running. A Ray of this
    test process's own (address "local"): under pytest-xdist, another worker's Ray would
    otherwise be found and joined, and a join may not set num_cpus."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, configure_logging=False,
             num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _ray_for_ray_mode(request, monkeypatch):
    """Tests parametrized with mode "ray" get the shared Ray started first, and its address in
    RAY_ADDRESS: the `consecution run` processes they start join it, as a driver joins a
    running cluster, instead of starting a Ray of their own (seconds each)."""
    params = getattr(request.node, "callspec", None)
    if params is not None and (params.params.get("mode") == "ray" or "ray" in params.params.get("modes", ())):
        ray = request.getfixturevalue("ray_cluster")
        monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
