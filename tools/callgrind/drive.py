"""Sends the first N requests of a harness request file (the load harness's gen.py format: METHOD, PATH,
CONTENT_TYPE, BODY, tab-separated) over one keep-alive connection, one at a time, and checks that
every answer has the workload's status (401 for W5, 200 otherwise).

usage: drive.py REQUEST_FILE HOST:PORT N"""
import os, socket, sys

path, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = "401" if os.path.basename(path).startswith("W5") else "200"
host, port = addr.split(":")
requests = []
with open(path) as f:
    for line in f:
        method, target, ctype, body = line.rstrip("\n").split("\t", 3)
        body = body.encode()
        head = f"{method} {target} HTTP/1.1\r\nHost: {addr}\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        requests.append((head + "\r\n").encode() + body)
sock = socket.create_connection((host, int(port)))
buf, statuses = b"", {}
for i in range(n):
    sock.sendall(requests[i % len(requests)])
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit(f"connection closed after {i} answers")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    length = 0
    for line in lines[1:]:
        name, value = line.split(":", 1)
        if name.lower() == "content-length":
            length = int(value)
    while len(buf) < length:
        buf += sock.recv(65536)
    buf = buf[length:]
    status = lines[0].split()[1]
    statuses[status] = statuses.get(status, 0) + 1
sock.close()
print(f"{os.path.basename(path)}: {n} requests, statuses {statuses}", file=sys.stderr)
if set(statuses) != {expected}:
    sys.exit(f"expected every answer to be {expected}")
