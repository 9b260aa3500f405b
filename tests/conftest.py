from support import run_cli, topology_file  # noqa: F401  (fixtures)
