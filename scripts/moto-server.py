"""Runs moto (the AWS emulator) in server mode on a free loopback port.

Prints the endpoint URL on its first line, then serves until its standard input closes, so a test
that dies takes its emulator with it. Usage: python scripts/moto-server.py [PORT]
"""
import sys

from moto.server import ThreadedMotoServer

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
try:
    sys.stdin.read()
finally:
    server.stop()
