#!/usr/bin/env python3
"""Small SIP/STUN helpers for the NAT end-to-end tests (standard library only).

  sip_tool.py registrar --listen=IP:PORT --control=PATH
      A minimal registrar: answers REGISTER with 200 OK (top Via gets received=/rport= with the
      address the request really came from) and remembers that source per AOR. Commands arrive on
      the UNIX socket PATH (a file, so it is reachable from every network namespace):
        source AOR                  -> "IP:PORT" of the AOR's last REGISTER, or "none"
        probe IP:PORT SECONDS       -> sends OPTIONS from the registrar's own socket; "answered STATUS"
                                       or "timeout"
  sip_tool.py ctl PATH COMMAND...
      Sends one command to a running registrar and prints the answer (exit 1 on "none"/"timeout").
  sip_tool.py probe-from --bind=IP:PORT --target=IP:PORT [--timeout=SECONDS]
      An OPTIONS from some other socket (an outsider to the phone's NAT mapping); exit 0 and
      "answered STATUS" if anything answers, exit 1 and "timeout" if nothing does.
  sip_tool.py stun-register --bind=IP:PORT --stun=IP:PORT --registrar=IP:PORT --aor=AOR
      From ONE socket: a STUN Binding request to the relay's responder, then a REGISTER to the
      registrar. Prints "stun=IP:PORT registrar=IP:PORT": the public address each of them saw.
"""
import argparse
import os
import random
import select
import socket
import struct
import sys
import time


def split_hostport(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def header(message, name):
    for line in message.split("\r\n")[1:]:
        if not line:
            break
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def aor_of(to_value):
    value = to_value or ""
    if "<" in value:
        value = value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0]


def register_ok(request, source):
    lines = request.split("\r\n")
    out = ["SIP/2.0 200 OK"]
    via_done = False
    for line in lines[1:]:
        if not line:
            break
        key = line.partition(":")[0].strip().lower()
        if key in ("via", "v"):
            if not via_done:
                line = line.replace(";rport", "") + ";received=%s;rport=%d" % source
                via_done = True
            out.append(line)
        elif key in ("from", "f", "call-id", "i", "cseq", "contact", "m"):
            out.append(line)
        elif key in ("to", "t"):
            out.append(line if ";tag=" in line else line + ";tag=reg%08x" % random.getrandbits(32))
    out.append("Expires: 3600")
    out.append("Content-Length: 0")
    return ("\r\n".join(out) + "\r\n\r\n").encode()


def options_request(local, target, branch, call_id):
    return ("OPTIONS sip:%s:%d SIP/2.0\r\n"
            "Via: SIP/2.0/UDP %s:%d;branch=%s\r\n"
            "Max-Forwards: 70\r\n"
            "From: <sip:registrar@%s>;tag=probe\r\n"
            "To: <sip:%s:%d>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n" % (target[0], target[1], local[0], local[1], branch, local[0],
                                            target[0], target[1], call_id)).encode()


def registrar(args):
    listen = split_hostport(args.listen)
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(listen)
    if os.path.exists(args.control):
        os.unlink(args.control)
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ctl.bind(args.control)
    ctl.listen(8)
    sources = {}
    probes = {}  # branch -> (connection, deadline, target, next retransmission, request)
    log = lambda *a: print(time.strftime("%H:%M:%S"), *a, flush=True)
    log("registrar listening on %s:%d" % listen)
    while True:
        now = time.monotonic()
        timeout = 1.0
        for branch, (conn, deadline, target, again, request) in list(probes.items()):
            if now >= deadline:
                log("probe %s:%d: timeout" % target)
                conn.sendall(b"timeout\n")
                conn.close()
                del probes[branch]
                continue
            if now >= again:
                sip.sendto(request, target)
                probes[branch] = (conn, deadline, target, now + 0.5, request)
            timeout = min(timeout, max(0.0, min(deadline, probes[branch][3]) - now))
        readable, _, _ = select.select([sip, ctl], [], [], timeout)
        if sip in readable:
            data, source = sip.recvfrom(65535)
            text = data.decode("utf-8", "replace")
            if text.startswith("REGISTER "):
                aor = aor_of(header(text, "To") or header(text, "t"))
                sources[aor] = source
                log("REGISTER %s from %s:%d" % (aor, source[0], source[1]))
                sip.sendto(register_ok(text, source), source)
            elif text.startswith("SIP/2.0 "):
                via = header(text, "Via") or ""
                branch = via.partition("branch=")[2].split(";")[0]
                if branch in probes:
                    conn = probes.pop(branch)[0]
                    status = text.split(" ")[1]
                    log("probe answered %s from %s:%d" % (status, source[0], source[1]))
                    conn.sendall(("answered %s\n" % status).encode())
                    conn.close()
                # Anything else: the answers to the relay's keepalives sent as us; ignored.
            else:
                log("ignored from %s:%d: %s" % (source[0], source[1], text.split("\r\n")[0]))
        if ctl in readable:
            conn, _ = ctl.accept()
            conn.settimeout(2)
            words = conn.recv(4096).decode().split()
            if words[:1] == ["source"] and len(words) == 2:
                found = sources.get(words[1])
                conn.sendall(("%s:%d\n" % found if found else "none\n").encode())
                conn.close()
            elif words[:1] == ["probe"] and len(words) == 3:
                target = split_hostport(words[1])
                branch = "z9hG4bK-probe-%016x" % random.getrandbits(64)
                request = options_request(listen, target, branch, "probe-%016x@e2e" % random.getrandbits(64))
                log("probe %s:%d sent" % target)
                sip.sendto(request, target)
                probes[branch] = (conn, time.monotonic() + float(words[2]), target, time.monotonic() + 0.5, request)
            else:
                conn.sendall(b"error: unknown command\n")
                conn.close()


def ctl(args):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(args.path)
    conn.sendall(" ".join(args.command).encode())
    answer = b""
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            break
        answer += chunk
    text = answer.decode().strip()
    print(text)
    return 0 if text and text not in ("none", "timeout") and not text.startswith("error") else 1


def probe_from(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local = split_hostport(args.bind)
    sock.bind(local)
    branch = "z9hG4bK-outsider-%016x" % random.getrandbits(64)
    request = options_request(local, split_hostport(args.target), branch, "outsider-%016x@e2e" % random.getrandbits(64))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        sock.sendto(request, split_hostport(args.target))
        sock.settimeout(0.5)
        try:
            data, source = sock.recvfrom(4096)
        except socket.timeout:
            continue
        except ConnectionRefusedError:  # an ICMP error: no answer either
            continue
        print("answered %s from %s:%d" % (data.decode("utf-8", "replace").split(" ")[1], source[0], source[1]))
        return 0
    print("timeout")
    return 1


def stun_binding(sock, server, timeout=2.0):
    transaction = os.urandom(12)
    request = struct.pack("!HHI", 0x0001, 0, 0x2112A442) + transaction
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.sendto(request, server)
        sock.settimeout(0.5)
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if len(data) < 20 or data[8:20] != transaction or struct.unpack("!H", data[:2])[0] != 0x0101:
            continue
        offset = 20
        while offset + 4 <= len(data):
            kind, length = struct.unpack("!HH", data[offset:offset + 4])
            value = data[offset + 4:offset + 4 + length]
            if kind == 0x0020 and value[1] == 0x01:  # XOR-MAPPED-ADDRESS, IPv4
                port = struct.unpack("!H", value[2:4])[0] ^ 0x2112
                ip = struct.unpack("!I", value[4:8])[0] ^ 0x2112A442
                return "%s:%d" % (socket.inet_ntoa(struct.pack("!I", ip)), port)
            offset += 4 + ((length + 3) & ~3)
    raise SystemExit("stun: no answer from %s:%d" % server)


def stun_register(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    local = split_hostport(args.bind)
    sock.bind(local)
    stun = stun_binding(sock, split_hostport(args.stun))
    target = split_hostport(args.registrar)
    branch = "z9hG4bK-reg-%016x" % random.getrandbits(64)
    request = ("REGISTER sip:%s:%d SIP/2.0\r\n"
               "Via: SIP/2.0/UDP %s:%d;branch=%s;rport\r\n"
               "Max-Forwards: 70\r\n"
               "From: <%s>;tag=%08x\r\n"
               "To: <%s>\r\n"
               "Call-ID: reg-%016x@e2e\r\n"
               "CSeq: 1 REGISTER\r\n"
               "Contact: <sip:probe@%s:%d>\r\n"
               "Expires: 3600\r\n"
               "Content-Length: 0\r\n\r\n" % (target[0], target[1], local[0], local[1], branch, args.aor,
                                               random.getrandbits(32), args.aor, random.getrandbits(64), local[0],
                                               local[1])).encode()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        sock.sendto(request, target)
        sock.settimeout(0.5)
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            continue
        text = data.decode("utf-8", "replace")
        via = header(text, "Via") or ""
        if text.startswith("SIP/2.0 200") and branch in via:
            received = via.partition("received=")[2].split(";")[0]
            rport = via.partition("rport=")[2].split(";")[0]
            print("stun=%s registrar=%s:%s" % (stun, received, rport))
            return 0
    raise SystemExit("register: no 200 OK from %s:%d" % target)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("registrar")
    p.add_argument("--listen", required=True)
    p.add_argument("--control", required=True)
    p = sub.add_parser("ctl")
    p.add_argument("path")
    p.add_argument("command", nargs="+")
    p = sub.add_parser("probe-from")
    p.add_argument("--bind", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--timeout", type=float, default=3)
    p = sub.add_parser("stun-register")
    p.add_argument("--bind", required=True)
    p.add_argument("--stun", required=True)
    p.add_argument("--registrar", required=True)
    p.add_argument("--aor", required=True)
    args = parser.parse_args()
    return {"registrar": registrar, "ctl": ctl, "probe-from": probe_from, "stun-register": stun_register}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
