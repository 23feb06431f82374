"""A gRPC health probe (grpc.health.v1.Health/Check) over HTTP/2 cleartext
with prior knowledge, with the standard library only: what the kubelet's
native gRPC probe sends. Used by deploy/smoke.py."""

import socket
import struct


def _frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_int(n, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if n < limit:
        return bytes([first | n])
    out, n = [first | limit], n - limit
    while n >= 128:
        out.append((n % 128) + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def _hstr(b):
    return _hpack_int(len(b), 7) + b


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def grpc_health(addr, port, service="", timeout=1.0):
    """grpc.health.v1.Health/Check as the kubelet sends it; the status name,
    or an error string (connection refused, a gRPC error)."""
    try:
        with socket.create_connection((addr, port), timeout=timeout) as s:
            s.settimeout(timeout)
            block = (b"\x83\x86"                                            # :method POST, :scheme http
                     + b"\x04" + _hstr(b"/grpc.health.v1.Health/Check")     # :path
                     + b"\x01" + _hstr(f"{addr}:{port}".encode())           # :authority
                     + b"\x00" + _hstr(b"content-type") + _hstr(b"application/grpc")
                     + b"\x00" + _hstr(b"te") + _hstr(b"trailers"))
            svc = service.encode()
            msg = (b"\x0a" + _hpack_int(len(svc), 7) + svc) if svc else b""  # field 1, len < 128
            body = b"\x00" + struct.pack(">I", len(msg)) + msg
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0)
                      + _frame(1, 0x4, 1, block) + _frame(0, 0x1, 1, body))
            data = b""
            while True:
                hdr = _recv_exact(s, 9)
                length, ftype, flags = int.from_bytes(hdr[:3], "big"), hdr[3], hdr[4]
                stream = int.from_bytes(hdr[5:9], "big") & 0x7FFFFFFF
                payload = _recv_exact(s, length)
                if ftype == 4 and not flags & 1:
                    s.sendall(_frame(4, 1, 0))
                elif ftype == 6 and not flags & 1:
                    s.sendall(_frame(6, 1, 0, payload))
                elif ftype == 7:
                    code = struct.unpack(">I", payload[4:8])[0]
                    return f"GOAWAY (HTTP/2 error {code})"
                elif ftype == 3 and stream == 1:
                    return f"RST_STREAM (HTTP/2 error {struct.unpack('>I', payload)[0]})"
                elif ftype == 1 and stream == 1 and flags & 1 and not data:
                    return "a gRPC error (a response without a message)"
                elif ftype == 0 and stream == 1:
                    if flags & 0x8:
                        payload = payload[1:len(payload) - payload[0]]
                    data += payload
                    if len(data) >= 5:
                        n = struct.unpack(">I", data[1:5])[0]
                        if len(data) >= 5 + n:
                            m = data[5:5 + n]
                            status = 0
                            i = 0
                            while i < len(m):  # field 1 (status), a varint; skip others
                                key = m[i]
                                i += 1
                                val, shift = 0, 0
                                while True:
                                    b = m[i]
                                    i += 1
                                    val |= (b & 0x7F) << shift
                                    shift += 7
                                    if not b & 0x80:
                                        break
                                if key == 0x08:
                                    status = val
                            return HEALTH_STATUS.get(status, f"status {status}")
    except (OSError, struct.error, IndexError) as e:
        return f"no answer ({e})"
