#!/usr/bin/env python3
"""Helpers for tests/e2e/kamailio-loopback.sh: watch loopback traffic, speak rtpengine's ng protocol.

  ng_tool.py tap --ports=LO-HI --ng=PORT --sip=PORT[,PORT...] --out=FILE
      Captures every UDP packet on lo (AF_PACKET, needs root) with a source or destination port in
      LO-HI, one JSON object per line: t (epoch s), sport, dport, len, and for the ng and SIP ports the
      payload (latin-1). Runs until SIGTERM/SIGINT. Prints "tap ready" once listening.
  ng_tool.py ping HOST:PORT [--timeout=S]
      Sends {command: ping}; exit 0 on result=pong.
  ng_tool.py ng-log FILE --ng=PORT [--full-sdp]
      The ng exchange of a tap capture, one request/reply per entry: time, direction, the datagram
      verbatim (SDP bodies trimmed unless --full-sdp), and its decoding.
  ng_tool.py ng-json FILE --ng=PORT
      The ng exchange as JSON lines: t, from, to, kind (request|reply), cookie, body (decoded).
  ng_tool.py flows FILE [--after=T] [--before=T]
      Packet counts per (sport, dport) of the non-SIP, non-ng packets, as JSON {"S>D": n}.
  ng_tool.py ng-summary FILE --ng=PORT --call-id=ID
      The ng requests of one call as JSON lines, a retransmitted request (same cookie) once: t,
      command, from_tag, to_tag, flags, keys (in wire order), src (port), sent (datagrams), and the
      first reply's result, keys and delay (ms), or reply null.
  ng_tool.py sip-ping HOST:PORT
      One OPTIONS over UDP; exit 0 when any SIP response arrives within 0.5 s.
  ng_tool.py messages FILE
      A sipp -trace_msg log as JSON lines: dir (sent|received), start line, cseq, and the SDP's
      o=, c= and m= lines (sdp_o, sdp_c, sdp_m: [[media, port], ...]), or no sdp_* keys without SDP.
"""
import argparse
import heapq
import json
import os
import select
import signal
import socket
import struct
import sys
import time


# --- bencode (the subset ng uses: dicts, lists, byte strings, integers) -----------------------------
def bencode(v):
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(x) for k, x in v.items()) + b"e"
    if isinstance(v, (list, tuple)):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    return b"%d:%s" % (len(v), v)


def bdecode(data, i=0):
    """Returns (value, next index). Keys keep their wire order; strings are latin-1 str."""
    c = data[i:i + 1]
    if c == b"d":
        i += 1
        d = {}
        while data[i:i + 1] != b"e":
            k, i = bdecode(data, i)
            d[k], i = bdecode(data, i)
        return d, i + 1
    if c == b"l":
        i += 1
        out = []
        while data[i:i + 1] != b"e":
            x, i = bdecode(data, i)
            out.append(x)
        return out, i + 1
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n].decode("latin-1"), colon + 1 + n


def split_ng(payload):
    """(cookie, decoded body or None) of one ng datagram."""
    cookie, sep, body = payload.partition(b" ")
    if not sep:
        return cookie.decode("latin-1"), None
    try:
        return cookie.decode("latin-1"), bdecode(body)[0]
    except (ValueError, IndexError):
        return cookie.decode("latin-1"), None


# --- tap -----------------------------------------------------------------------------------------
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def tap(args):
    lo, hi = (int(x) for x in args.ports.split("-"))
    payload_ports = {args.ng} | {int(p) for p in args.sip.split(",") if p}
    s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    s.bind(("lo", ETH_P_IP))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    out = open(args.out, "w", buffering=1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    s.settimeout(0.2)
    print("tap ready", flush=True)
    while not stop:
        try:
            pkt, addr = s.recvfrom(70000)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if addr[2] == PACKET_OUTGOING:  # lo shows every packet twice: keep the received copy
            continue
        if len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != socket.IPPROTO_UDP:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        flags_frag = struct.unpack("!H", pkt[6:8])[0]
        if flags_frag & 0x1FFF:  # a non-first fragment: no UDP header
            continue
        sport, dport, ulen = struct.unpack("!HHH", pkt[ihl:ihl + 6])
        if not (lo <= sport <= hi or lo <= dport <= hi):
            continue
        rec = {"t": round(time.time(), 6), "sport": sport, "dport": dport, "len": ulen - 8}
        if sport in payload_ports or dport in payload_ports:
            rec["payload"] = pkt[ihl + 8:ihl + ulen].decode("latin-1")
        out.write(json.dumps(rec) + "\n")
    out.close()


def ping(args):
    host, port = args.target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(args.timeout)
    cookie = b"%d_ping" % os.getpid()
    s.sendto(cookie + b" " + bencode({"command": "ping"}), (host, int(port)))
    try:
        data, _ = s.recvfrom(65535)
    except (socket.timeout, ConnectionRefusedError):
        return 1
    c, body = split_ng(data)
    return 0 if c == cookie.decode() and isinstance(body, dict) and body.get("result") == "pong" else 1


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def ng_records(path, ng_port):
    for r in load(path):
        if "payload" not in r or ng_port not in (r["sport"], r["dport"]):
            continue
        cookie, body = split_ng(r["payload"].encode("latin-1"))
        yield r, cookie, body


def trim_sdp(raw):
    """The datagram with the value of every 'sdp' key replaced by a short placeholder (lengths fixed)."""
    out = raw
    key = "3:sdp"
    i = 0
    while True:
        i = out.find(key, i)
        if i < 0:
            return out
        j = i + len(key)
        colon = out.find(":", j)
        if colon < 0 or not out[j:colon].isdigit():
            i = j
            continue
        n = int(out[j:colon])
        body = out[colon + 1:colon + 1 + n]
        lines = [l for l in body.split("\r\n") if l.startswith(("o=", "c=", "m="))]
        summary = "<SDP %d bytes: %s>" % (n, " | ".join(lines))
        out = out[:j] + "%d:%s" % (len(summary), summary) + out[colon + 1 + n:]
        i = j


def ng_log(args):
    t0 = None
    for r, cookie, body in ng_records(args.file, args.ng):
        t0 = t0 or r["t"]
        kind = "request" if r["dport"] == args.ng else "reply"
        raw = r["payload"]
        shown = raw if args.full_sdp else trim_sdp(raw)
        print("+%.3fs %s %d -> %d (%d bytes)" % (r["t"] - t0, kind, r["sport"], r["dport"], len(raw)))
        print("  " + shown.replace("\r\n", "\\r\\n").replace("\n", "\\n"))


def ng_json(args):
    for r, cookie, body in ng_records(args.file, args.ng):
        kind = "request" if r["dport"] == args.ng else "reply"
        print(json.dumps({"t": r["t"], "from": r["sport"], "to": r["dport"], "kind": kind, "cookie": cookie,
                          "body": body}))


def flows(args):
    counts = {}
    for r in load(args.file):
        if "payload" in r:
            continue
        if args.after is not None and r["t"] < args.after:
            continue
        if args.before is not None and r["t"] >= args.before:
            continue
        k = "%d>%d" % (r["sport"], r["dport"])
        counts[k] = counts.get(k, 0) + 1
    print(json.dumps(counts, sort_keys=True))


def ng_summary(args):
    reqs, order = {}, []
    for r, cookie, body in ng_records(args.file, args.ng):
        if not isinstance(body, dict):
            continue
        if r["dport"] == args.ng:
            if body.get("call-id") != args.call_id:
                continue
            if cookie in reqs:
                reqs[cookie]["sent"] += 1
                continue
            reqs[cookie] = {"t": r["t"], "command": body.get("command"), "from_tag": body.get("from-tag"),
                            "to_tag": body.get("to-tag"), "flags": body.get("flags", []),
                            "keys": list(body), "src": r["sport"], "sent": 1, "reply": None}
            order.append(cookie)
        elif cookie in reqs and reqs[cookie]["reply"] is None:
            req = reqs[cookie]
            req["reply"] = {"result": body.get("result"), "keys": list(body), "to": r["dport"],
                            "delay_ms": round((r["t"] - req["t"]) * 1000, 1)}
            if "sdp" in body:
                m = [l for l in body["sdp"].split("\r\n") if l.startswith("m=")]
                req["reply"]["sdp_m"] = m
    for c in order:
        print(json.dumps(reqs[c]))


def sip_ping(args):
    host, port = args.target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.5)
    me = "127.0.0.1:%d" % s.getsockname()[1]
    msg = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%d\r\nFrom: <sip:probe@%s>;tag=p\r\n"
           "To: <sip:%s>\r\nCall-ID: probe-%d\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
           "Content-Length: 0\r\n\r\n" % (args.target, me, os.getpid(), me, args.target, os.getpid()))
    s.sendto(msg.encode(), (host, int(port)))
    try:
        data, _ = s.recvfrom(65535)
    except (socket.timeout, ConnectionRefusedError):
        return 1
    return 0 if data.startswith(b"SIP/2.0 ") else 1


def messages(args):
    text = open(args.file, encoding="latin-1").read()
    for block in text.split("-----------------------------------------------")[1:]:
        head, _, msg = block.partition("\n\n")
        direction = "sent" if "message sent" in head else "received"
        msg = msg.replace("\r\n", "\n").strip("\n")
        hdrs, _, body = msg.partition("\n\n")
        lines = hdrs.split("\n")
        rec = {"dir": direction, "start": lines[0]}
        for l in lines[1:]:
            name, _, value = l.partition(":")
            if name.strip().lower() == "cseq":
                rec["cseq"] = value.strip()
            elif name.strip().lower() in ("call-id", "i"):
                rec["call_id"] = value.strip()
            elif name.strip().lower() in ("from", "f", "to", "t"):
                tag = value.partition(";tag=")[2].split(";")[0].strip()
                rec["from_tag" if name.strip().lower() in ("from", "f") else "to_tag"] = tag
        if "v=0" in body:
            sdp = [l.strip() for l in body.split("\n")]
            rec["sdp_o"] = [l[2:] for l in sdp if l.startswith("o=")]
            rec["sdp_c"] = [l[2:] for l in sdp if l.startswith("c=")]
            rec["sdp_m"] = [[l[2:].split()[0], int(l[2:].split()[1])] for l in sdp if l.startswith("m=")]
        print(json.dumps(rec))


# --- delay-proxy ---------------------------------------------------------------------------------
def delay_proxy(args):
    """Forwards ng datagrams between clients (Kamailio) and the ng server, one upstream socket per
    client so the server sees each client's own source. The first reply to each offer whose call-id
    starts with --call-id-prefix is held back --delay-ms, so the client sends the request again (same
    cookie, same bytes) and gets the server's answer to that retransmission first."""
    listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listen.bind(("127.0.0.1", args.listen))
    upstream = {}   # client address -> socket connected to the server
    client_of = {}  # that socket's fileno -> client address
    marked = set()   # cookies whose first reply is held back
    replied = set()  # ... whose first reply came
    held = []        # (release time, seq, datagram, client)
    seq = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    print("delay-proxy ready", flush=True)
    while not stop:
        timeout = 0.2 if not held else max(0.0, min(0.2, held[0][0] - time.time()))
        ready, _, _ = select.select([listen] + list(upstream.values()), [], [], timeout)
        while held and held[0][0] <= time.time():
            _, _, data, client = heapq.heappop(held)
            listen.sendto(data, client)
        for sock in ready:
            if sock is listen:
                data, client = listen.recvfrom(70000)
                cookie, body = split_ng(data)
                if (isinstance(body, dict) and body.get("command") == "offer"
                        and str(body.get("call-id", "")).startswith(args.call_id_prefix)):
                    marked.add(cookie)
                if client not in upstream:
                    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    u.connect(("127.0.0.1", args.target))
                    upstream[client] = u
                    client_of[u.fileno()] = client
                upstream[client].send(data)
                continue
            data = sock.recv(70000)
            client = client_of[sock.fileno()]
            cookie, _ = split_ng(data)
            if cookie in marked and cookie not in replied:
                replied.add(cookie)
                seq += 1
                heapq.heappush(held, (time.time() + args.delay_ms / 1000.0, seq, data, client))
                print("held back the first reply to %s for %d ms" % (cookie, args.delay_ms), flush=True)
            else:
                listen.sendto(data, client)
    return 0


def retransmissions(args):
    """Each offer cookie of the call: how often the server received it, its replies, how many distinct."""
    requests, replies = {}, {}
    for r, cookie, body in ng_records(args.file, args.ng):
        if r["dport"] == args.ng:
            if isinstance(body, dict) and body.get("call-id") == args.call_id and body.get("command") == "offer":
                requests[cookie] = requests.get(cookie, 0) + 1
        else:
            replies.setdefault(cookie, []).append(r["payload"])
    for cookie, count in requests.items():
        got = replies.get(cookie, [])
        print(json.dumps({"cookie": cookie, "requests": count, "replies": len(got), "distinct_replies": len(set(got))}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tap")
    t.add_argument("--ports", required=True)
    t.add_argument("--ng", type=int, required=True)
    t.add_argument("--sip", default="")
    t.add_argument("--out", required=True)
    q = sub.add_parser("ping")
    q.add_argument("target")
    q.add_argument("--timeout", type=float, default=0.5)
    l = sub.add_parser("ng-log")
    l.add_argument("file")
    l.add_argument("--ng", type=int, required=True)
    l.add_argument("--full-sdp", action="store_true")
    j = sub.add_parser("ng-json")
    j.add_argument("file")
    j.add_argument("--ng", type=int, required=True)
    f = sub.add_parser("flows")
    f.add_argument("file")
    f.add_argument("--after", type=float)
    f.add_argument("--before", type=float)
    n = sub.add_parser("ng-summary")
    n.add_argument("file")
    n.add_argument("--ng", type=int, required=True)
    n.add_argument("--call-id", required=True)
    sp = sub.add_parser("sip-ping")
    sp.add_argument("target")
    m = sub.add_parser("messages")
    m.add_argument("file")
    d = sub.add_parser("delay-proxy")
    d.add_argument("--listen", type=int, required=True)
    d.add_argument("--target", type=int, required=True)
    d.add_argument("--delay-ms", type=int, default=700)
    d.add_argument("--call-id-prefix", required=True)
    rt = sub.add_parser("retransmissions")
    rt.add_argument("file")
    rt.add_argument("--ng", type=int, required=True)
    rt.add_argument("--call-id", required=True)
    a = p.parse_args()
    sys.exit({"tap": tap, "ping": ping, "ng-log": ng_log, "ng-json": ng_json, "flows": flows, "messages": messages, "ng-summary": ng_summary,
              "sip-ping": sip_ping, "delay-proxy": delay_proxy,
              "retransmissions": retransmissions}[a.cmd](a) or 0)


if __name__ == "__main__":
    main()
