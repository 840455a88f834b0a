from ferry.cli import run

run()
