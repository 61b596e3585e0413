"""Slow HTTP: N half-sent upgrade requests; how many the server closed after 5, 12, 32 s.

    python3 slow_http.py PORT N
"""
import socket, time, sys
port = int(sys.argv[1]); n = int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
    socks.append(s)
t0 = time.time()
def closed(s):
    s.setblocking(False)
    try:
        d = s.recv(1)
        return d == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
for wait in [5, 12, 32]:
    time.sleep(max(0, wait - (time.time() - t0)))
    print(f"after {wait} s: {sum(closed(s) for s in socks)} of {n} closed by the server")
