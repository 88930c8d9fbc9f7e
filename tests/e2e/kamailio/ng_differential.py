#!/usr/bin/env python3
"""The driver of tests/e2e/ng-differential.sh: the same ng requests to rtpengine and to Latchkey's ng
front door, their replies compared.

  ng_differential.py --rtpengine=HOST:PORT --rtpengine-ports=LO-HI --latchkey=HOST:PORT
                     --latchkey-ports=LO-HI --relay-ip=IP [--out=FILE] [--only=SCENARIO]

Every request is one datagram, built once (bencode in Kamailio 5.6's key order, cookie 0_<pid>_<n>)
and sent byte for byte to both servers, each from its own connected socket (as a Kamailio worker
does). For each request it compares:
  - result (ok / error / pong / load limit, or NO-REPLY), and whether a warning is present;
  - the reply's keys (offer/answer/ping/errors);
  - for SDP replies, the structure of the rewritten SDP: its lines by type in order (v, o, s, c, t, m,
    and a= by attribute name, rtpmap/fmtp with their value), so m= lines (media, proto, formats)
    must be equal; direction and RTCP attributes (REWRITTEN), which rtpengine writes again in a place
    of its own, by count within each media section;
  - checks each server must pass on its own SDP: every c= and the o= (with replace-origin) name its
    relay address, not the phone's; without replace-origin o= is untouched; every m= port is in its
    relay port range;
  - port properties a step asks for (a re-offer keeps its ports, a fork gets its own ...): each
    server's answer to the property, compared;
  - retransmissions: the same datagram twice gets byte-identical replies (each server on its own).
Each difference is a string such as "result: rtpengine=ok latchkey=error" or "sdp-line
rtpengine-only a=rtcp". One that matches an ALLOW_LIST entry is a known difference (Latchkey's
design); any other makes the row DIFFER and the exit status 1. The exchange goes to --out as JSON
lines (request and both replies, verbatim).
"""
import argparse
import difflib
import fnmatch
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ng_tool import bdecode, bencode  # noqa: E402

SERVERS = ("rtpengine", "latchkey")
PID = os.getpid()

# ---------------------------------------------------------------------------------------------------
# The allow-list: differences that are deliberate. Each entry: (scenario glob, step glob, difference
# glob, why). Globs are fnmatch patterns over the scenario name, the step label and the difference
# string. Keep each entry as narrow as the difference is; docs/ng-differences.md is the same list for
# operators.
ALLOW_LIST = [
    # --- SDP shape.
    ("*", "*", "sdp-line rtpengine-only a=sendrecv",
     "rtpengine writes the default direction a=sendrecv explicitly; Latchkey leaves the phone's direction "
     "attributes as they were (none means sendrecv, RFC 4566)"),
    ("*", "*", "sdp-line rtpengine-only a=rtcp",
     "rtpengine allocates an RTCP port (RTP+1) and advertises it with a=rtcp; Latchkey relays RTCP on RTP+1 "
     "without adding the attribute (the RFC 3605 default is RTP+1 anyway)"),
    ("3 rtcp-mux-demux*", "*offer*", "sdp-line latchkey-only a=rtcp-mux",
     "rtcp-mux-demux: rtpengine strips a=rtcp-mux from the offer it passes on and gives the callee separate "
     "RTP and RTCP ports; Latchkey does not demultiplex, it passes a=rtcp-mux through so the phones negotiate "
     "it end to end (the relay forwards whatever arrives on each port)"),
    ("3 rtcp-mux-demux*", "*", "warning: rtpengine=no latchkey=yes",
     "rtcp-mux-demux (and -require): Latchkey says in a warning that it passes a=rtcp-mux through (Kamailio "
     "never reads warnings); rtpengine does the demux silently"),
    ("3 hold", "re-offer c=0.0.0.0", "sdp-line rtpengine-only a=sendonly",
     "an RFC 2543 hold (c=0.0.0.0): rtpengine also writes a=sendonly; Latchkey passes the SDP's direction "
     "as it is (both keep c=0.0.0.0)"),
    # --- ICE.
    ("3 no ICE key*", "*", "sdp-line rtpengine-only a=ice-*",
     "no ICE key and ICE in the SDP: rtpengine's default is ICE=force (it replaces the candidates with its "
     "own and runs ICE); Latchkey's default is remove, its relay is not an ICE agent"),
    ("3 no ICE key*", "*", "sdp-line rtpengine-only a=candidate", "as above: rtpengine's own candidates"),
    # --- Ports on a callee re-INVITE and on a second answering tag.
    ("4 callee re-INVITE", "offer callee>caller*",
     "property re-INVITE keeps the caller's relay port: rtpengine=False latchkey=True",
     "rtpengine 10.5 without port-latching allocates the caller a new relay port when the callee's port "
     "changed in its re-INVITE; Latchkey keeps every relay port for the life of the session (the caller's "
     "NAT pinhole and latch stay valid)"),
    ("6 answer from a second tag", "answer to-tag Y*",
     "property the second tag gets the first answer's relay port: rtpengine=False latchkey=True",
     "183 from tag X then 200 from tag Y: rtpengine creates a second callee monologue with new ports; "
     "Latchkey has one callee leg per session and takes Y as the same callee (the caller keeps the port it "
     "already has)"),
    ("6 answer from a second tag", "answer to-tag Y*", "warning: rtpengine=no latchkey=yes",
     "Latchkey says in a warning that it took the new to-tag as the same callee"),
    # --- Commands for media work.
    ("8 malformed", "start recording", "result: rtpengine=ok latchkey=error",
     "start/stop recording, block/unblock DTMF/media, play media ...: Latchkey does not touch media and "
     "answers error \"Unrecognized command\" (the Kamailio function returns -1) rather than ok for work not "
     "done; rtpengine 10.5 answers ok even with no recording method configured"),
    ("8 malformed", "start recording", "reply-keys latchkey-only error-reason", "consequence of the error above"),
    # --- Query and delete replies: Latchkey answers with the keys Kamailio reads, not rtpengine's full
    # statistics tree (keeps replies small: fragmented replies make Kamailio time out, rtpengine #1045).
    ("*", "query*", "reply-keys *",
     "query: Latchkey replies created, last signal, tags, totals{RTP,RTCP} (what $rtpstat reads); rtpengine "
     "also sends created_us, SSRC and its full per-stream tree"),
    ("*", "delete*", "reply-keys *",
     "delete: Latchkey replies {result, created}; rtpengine adds its statistics tree (as query)"),
    # --- Error wording: Kamailio logs error-reason and fails the function either way; Latchkey's reasons
    # name the key. The result (error) is compared, the text is not (not a difference string at all).
    # --- Refusals where rtpengine does media work Latchkey does not do.
    ("8 malformed", "offer transport-protocol RTP/SAVP*", "result: rtpengine=ok latchkey=error",
     "rtpengine terminates SRTP (translates RTP/AVP to RTP/SAVP with SDES keys); Latchkey relays media "
     "unchanged and refuses rather than promise SRTP in the SDP"),
    ("8 malformed", "offer ICE=force*", "result: rtpengine=ok latchkey=error",
     "rtpengine becomes an ICE agent (adds its candidates, answers STUN); Latchkey's relay is not an ICE agent "
     "and refuses ICE=force rather than advertise candidates it cannot serve"),
    ("8 malformed", "offer transport-protocol RTP/SAVP*", "reply-keys *",
     "consequence of the refusal above (error-reason instead of sdp)"),
    ("8 malformed", "offer ICE=force*", "reply-keys *", "consequence of the refusal above (error-reason instead of sdp)"),
]

# ---------------------------------------------------------------------------------------------------
# Requests, as Kamailio 5.6's rtpengine module builds them.


def sdp(addr, port, sess_id, ice=False, extra=(), video=None):
    """A phone's SDP: PCMU, PCMA, telephone-event; `extra` a= lines after a=ptime; `video` a port for a
    second m= line (H.264)."""
    lines = [
        "v=0",
        "o=- %d 1 IN IP4 %s" % (sess_id, addr),
        "s=-",
        "c=IN IP4 %s" % addr,
        "t=0 0",
        "m=audio %d RTP/AVP 0 8 101" % port,
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
    ]
    lines += [l % {"rtcp": port + 1, "addr": addr} for l in extra]
    if video is not None:
        lines += ["m=video %d RTP/AVP 96" % video, "a=rtpmap:96 H264/90000", "a=fmtp:96 profile-level-id=42e01f"]
    if ice:
        lines += [
            "a=ice-ufrag:F7gI",
            "a=ice-pwd:x9cml/YzichV2+XlhiMu8g",
            "a=candidate:1 1 UDP 2130706431 %s %d typ host" % (addr, port),
            "a=candidate:1 2 UDP 2130706430 %s %d typ host" % (addr, port + 1),
        ]
    return "\r\n".join(lines) + "\r\n"


# The phones: private addresses (never the relay's 127.0.0.1), the SIP hop Kamailio hears a public one.
CALLER_IP, CALLEE_IP, SIP_HOP = "10.0.0.11", "10.0.0.22", "198.51.100.7"
CALLER_SDP = sdp(CALLER_IP, 40000, 1001, ice=True)
CALLEE_SDP = sdp(CALLEE_IP, 50000, 2002)
CALLEE_SDP_MOVED = sdp(CALLEE_IP, 50002, 2002)  # the callee's re-INVITE moves its media


def ng(command, call_id=None, from_tag=None, to_tag=None, body=None, flags=(), replace=(), ice="remove",
       via_branch=None, extra=None, received_from=SIP_HOP, supports=True, after_command=None):
    """An ordered request dict: supports, sdp, ICE (and other key=value flags), flags, replace, call-id,
    via-branch, received-from, from-tag, to-tag, command (Kamailio adds command last)."""
    d = {}
    if command == "ping":
        return {"command": "ping"}
    if supports:
        d["supports"] = ["load limit"]
    if body is not None:
        d["sdp"] = body
    if ice is not None and command in ("offer", "answer"):
        d["ICE"] = ice
    for k, v in (extra or {}).items():
        d[k] = v
    if flags:
        d["flags"] = list(flags)
    if replace:
        d["replace"] = list(replace)
    if call_id is not None:
        d["call-id"] = call_id
    if via_branch is not None:
        d["via-branch"] = via_branch
    if received_from is not None:
        d["received-from"] = ["IP4", received_from]
    if from_tag is not None:
        d["from-tag"] = from_tag
    if to_tag is not None:
        d["to-tag"] = to_tag
    d["command"] = command
    for k, v in (after_command or {}).items():
        d[k] = v
    return d


KAM = dict(flags=["trust-address"], replace=["origin"], ice="remove")  # "replace-origin trust-address ICE=remove"


class Step:
    """label: the row's name. body: a request dict (bencoded) or raw bytes. props: {name: fn(ports)} where
    ports maps step labels to the m= ports of that server's SDP replies so far. repeat: send the same
    datagram twice. origin: whether o= must be the relay's (default: 'origin' in the request's replace)."""

    def __init__(self, label, body, props=None, repeat=False, origin=None):
        self.label, self.body, self.props, self.repeat, self.origin = label, body, props or {}, repeat, origin


def call_id(name):
    return "diff-%s-%d@198.51.100.7" % (name, PID)


def basic_steps(name, kam=KAM, extra=None, after_command=None, caller_sdp=CALLER_SDP, callee_sdp=CALLEE_SDP):
    """Offer, answer, re-offer (same SDP), query, delete: what Kamailio sends for INVITE, 200, re-INVITE,
    $rtpstat, BYE."""
    cid, a, b = call_id(name), "caller-" + name, "callee-" + name
    return [
        Step("offer", ng("offer", cid, a, body=caller_sdp, extra=extra, after_command=after_command, **kam)),
        Step("answer", ng("answer", cid, a, b, body=callee_sdp, extra=extra, after_command=after_command, **kam)),
        Step("re-offer (same SDP)", ng("offer", cid, a, b, body=caller_sdp, extra=extra,
                                       after_command=after_command, **kam),
             props={"re-offer keeps the offer's relay port": lambda p: p["re-offer (same SDP)"] == p["offer"]}),
        Step("query", ng("query", cid, a, b)),
        Step("delete", ng("delete", cid, a)),
    ]


def scenarios():
    s = []
    s.append(("1 ping", [Step("ping", ng("ping"))]))
    basic = basic_steps("basic")
    # The callee's 200 retransmitted (Kamailio runs rtpengine_manage on it again: a new cookie, same SDP).
    basic.insert(2, Step("answer again (200 retransmitted)",
                         ng("answer", call_id("basic"), "caller-basic", "callee-basic", body=CALLEE_SDP, **KAM),
                         props={"the repeated answer keeps its relay port":
                                lambda p: p["answer again (200 retransmitted)"] == p["answer"]}))
    # The caller's BYE retransmitted (a new ng request, so a new cookie) within the delete delay.
    basic.append(Step("delete again (BYE retransmitted)", ng("delete", call_id("basic"), "caller-basic")))
    s.append(("2 basic", basic))
    s.append(("3 SIP-source-address", basic_steps(
        "sipsrc", dict(flags=["SIP-source-address"], replace=["origin"], ice="remove"))))
    s.append(("3 asymmetric", basic_steps(
        "asym", dict(flags=["trust-address", "asymmetric"], replace=["origin"], ice="remove"))))
    s.append(("3 address-family=IP4", basic_steps("af", extra={"address-family": "IP4"})))
    s.append(("3 rtcp-mux-demux", basic_steps("demux", extra={"rtcp-mux": ["demux"]})))
    s.append(("3 unknown flag foo-bar", basic_steps(
        "unkflag", dict(flags=["trust-address", "foo-bar"], replace=["origin"], ice="remove"))))
    s.append(("3 unknown keys", basic_steps(
        "unkkey", extra={"frobnicate": "yes", "x-list": ["a", "b"], "x-int": 7})))
    s.append(("3 no replace-origin", basic_steps("noorigin", dict(flags=["trust-address"], ice="remove"))))
    # Phones that write a=sendrecv and a=rtcp (RFC 3605, naming their own RTCP port and address).
    s.append(("3 phone SDP with a=rtcp", basic_steps(
        "rtcpattr", caller_sdp=sdp(CALLER_IP, 40000, 1001, extra=["a=sendrecv", "a=rtcp:%(rtcp)d"]),
        callee_sdp=sdp(CALLEE_IP, 50000, 2002, extra=["a=sendrecv", "a=rtcp:50001 IN IP4 %(addr)s"]))))
    # rtcp-mux-demux when both phones offer and accept a=rtcp-mux.
    s.append(("3 rtcp-mux-demux, SDP with a=rtcp-mux", basic_steps(
        "demuxsdp", extra={"rtcp-mux": ["demux"]}, caller_sdp=sdp(CALLER_IP, 40000, 1001, extra=["a=rtcp-mux"]),
        callee_sdp=sdp(CALLEE_IP, 50000, 2002, extra=["a=rtcp-mux"]))))
    s.append(("3 audio+video", basic_steps(
        "video", caller_sdp=sdp(CALLER_IP, 40000, 1001, video=40010),
        callee_sdp=sdp(CALLEE_IP, 50000, 2002, video=50010))))

    # No ICE key at all (a script without ICE=remove) and a caller SDP with ICE.
    s.append(("3 no ICE key, SDP with ICE", basic_steps(
        "noice", dict(flags=["trust-address"], replace=["origin"], ice=None))))
    # Hold: the caller re-offers a=sendonly, then the old way (c=0.0.0.0).
    cid, a, b = call_id("hold"), "caller-hold", "callee-hold"
    s.append(("3 hold", [
        Step("offer", ng("offer", cid, a, body=CALLER_SDP, **KAM)),
        Step("answer", ng("answer", cid, a, b, body=CALLEE_SDP, **KAM)),
        Step("re-offer a=sendonly", ng("offer", cid, a, b, body=sdp(CALLER_IP, 40000, 1001, extra=["a=sendonly"]),
                                       **KAM)),
        Step("answer a=recvonly", ng("answer", cid, a, b, body=sdp(CALLEE_IP, 50000, 2002, extra=["a=recvonly"]),
                                     **KAM)),
        Step("re-offer c=0.0.0.0", ng("offer", cid, a, b, body=sdp(CALLER_IP, 40000, 1001).replace(
            "c=IN IP4 10.0.0.11", "c=IN IP4 0.0.0.0"), **KAM), origin=True),
        Step("delete", ng("delete", cid, a)),
    ]))

    # 4. The callee's re-INVITE: an offer with the callee's tag as from-tag, its answer with the same order.
    cid, a, b = call_id("reinvite"), "caller-reinvite", "callee-reinvite"
    s.append(("4 callee re-INVITE", [
        Step("offer", ng("offer", cid, a, body=CALLER_SDP, **KAM)),
        Step("answer", ng("answer", cid, a, b, body=CALLEE_SDP, **KAM)),
        Step("offer callee>caller (moved)", ng("offer", cid, b, a, body=CALLEE_SDP_MOVED, **KAM),
             props={"re-INVITE keeps the caller's relay port": lambda p: p["offer callee>caller (moved)"] == p["answer"]}),
        Step("answer callee>caller", ng("answer", cid, b, a, body=CALLER_SDP, **KAM),
             props={"re-INVITE keeps the callee's relay port": lambda p: p["answer callee>caller"] == p["offer"]}),
        Step("query", ng("query", cid, a, b)),
        Step("delete by the callee (its BYE)", ng("delete", cid, b)),
    ]))

    # 5. Late offer: the callee offers in its 200 (tags swapped), the caller answers in the ACK.
    cid, a, b = call_id("late"), "caller-late", "callee-late"
    s.append(("5 late offer", [
        Step("offer callee>caller", ng("offer", cid, b, a, body=CALLEE_SDP, **KAM)),
        Step("answer callee>caller", ng("answer", cid, b, a, body=CALLER_SDP, **KAM)),
        Step("query", ng("query", cid, a, b)),
        Step("delete", ng("delete", cid, a)),
    ]))

    # 6. Forking: two branches of one INVITE, b1 answers, b2 is cancelled.
    cid, a, b = call_id("fork"), "caller-fork", "callee-fork"
    s.append(("6 forking", [
        Step("offer vb=b1", ng("offer", cid, a, body=CALLER_SDP, via_branch="z9hG4bK-b1", **KAM)),
        Step("offer vb=b2", ng("offer", cid, a, body=CALLER_SDP, via_branch="z9hG4bK-b2", **KAM),
             props={"fork b2 gets relay ports of its own": lambda p: p["offer vb=b2"] != p["offer vb=b1"]}),
        Step("answer vb=b1", ng("answer", cid, a, b, body=CALLEE_SDP, via_branch="z9hG4bK-b1", **KAM)),
        Step("delete vb=b2", ng("delete", cid, a, via_branch="z9hG4bK-b2")),
        Step("query", ng("query", cid, a, b)),
        Step("delete", ng("delete", cid, a)),
    ]))

    # 6b. Early media from one tag (183), the call answered from another (200 from a second device).
    cid, a = call_id("twotags"), "caller-twotags"
    s.append(("6 answer from a second tag", [
        Step("offer", ng("offer", cid, a, body=CALLER_SDP, **KAM)),
        Step("answer to-tag X (183)", ng("answer", cid, a, "callee-X", body=CALLEE_SDP, **KAM)),
        Step("answer to-tag Y (200)", ng("answer", cid, a, "callee-Y", body=sdp("10.0.0.33", 52000, 3003), **KAM),
             props={"the second tag gets the first answer's relay port":
                    lambda p: p["answer to-tag Y (200)"] == p["answer to-tag X (183)"]}),
        Step("query", ng("query", cid, a, "callee-Y")),
        Step("delete", ng("delete", cid, a)),
    ]))

    # 7. A call neither server knows.
    cid, a, b = call_id("unknown"), "caller-unknown", "callee-unknown"
    s.append(("7 unknown call", [
        Step("answer", ng("answer", cid, a, b, body=CALLEE_SDP, **KAM)),
        Step("query", ng("query", cid, a, b)),
        Step("delete", ng("delete", cid, a)),
        Step("delete fatal", ng("delete", cid, a, flags=["fatal"])),
    ]))

    # 8. Malformed and refused requests.
    cid, a, b = call_id("malformed"), "caller-malformed", "callee-malformed"
    good = bencode(ng("offer", call_id("trunc"), a, body=CALLER_SDP, **KAM))
    wrong_from = ng("offer", call_id("wrongtype1"), a, body=CALLER_SDP, **KAM)
    wrong_from["from-tag"] = [a]
    wrong_sdp = ng("offer", call_id("wrongtype2"), a, body=CALLER_SDP, **KAM)
    wrong_sdp["sdp"] = 42
    s.append(("8 malformed", [
        Step("offer without call-id", ng("offer", None, a, body=CALLER_SDP, **KAM)),
        Step("offer without from-tag", ng("offer", call_id("nofrom"), None, body=CALLER_SDP, **KAM)),
        Step("offer without sdp", ng("offer", call_id("nosdp"), a, **KAM)),
        Step("offer (for the next)", ng("offer", cid, a, body=CALLER_SDP, **KAM)),
        Step("answer without to-tag", ng("answer", cid, a, body=CALLEE_SDP, **KAM)),
        Step("offer from-tag as a list", wrong_from),
        Step("offer sdp as an integer", wrong_sdp),
        Step("truncated bencode", good[:len(good) // 2]),
        Step("body a list, not a dict", b"l4:pinge"),
        Step("body an integer", b"i42e"),
        Step("start recording", ng("start recording", cid, a, b)),
        Step("offer transport-protocol RTP/SAVP", ng("offer", call_id("savp"), a, body=CALLER_SDP,
                                                     extra={"transport-protocol": "RTP/SAVP"}, **KAM)),
        Step("offer ICE=force", ng("offer", call_id("iceforce"), a, body=CALLER_SDP, flags=["trust-address"],
                                   replace=["origin"], ice="force")),
        Step("offer address-family=IP6 (IPv4-only relays)", ng("offer", call_id("ip6"), a, body=CALLER_SDP,
                                                              extra={"address-family": "IP6"}, **KAM)),
    ]))

    # 9. Retransmissions: every datagram twice (same cookie, same bytes).
    cid, a, b = call_id("retrans"), "caller-retrans", "callee-retrans"
    s.append(("9 retransmission", [
        Step("offer x2", ng("offer", cid, a, body=CALLER_SDP, **KAM), repeat=True),
        Step("answer x2", ng("answer", cid, a, b, body=CALLEE_SDP, **KAM), repeat=True),
        Step("delete x2", ng("delete", cid, a), repeat=True),
    ]))

    # 10. A Call-ID reused after delete: INVITE, 407 (delete), the INVITE again with credentials (same
    # Call-ID and from-tag), answered, then the BYE.
    cid, a, b = call_id("reuse"), "caller-reuse", "callee-reuse"
    s.append(("10 reuse after delete", [
        Step("offer", ng("offer", cid, a, body=CALLER_SDP, **KAM)),
        Step("delete (407)", ng("delete", cid, a)),
        Step("offer again", ng("offer", cid, a, body=CALLER_SDP, **KAM),
             props={"the offer after delete gets the first offer's relay port": lambda p: p["offer again"] == p["offer"]}),
        Step("answer", ng("answer", cid, a, b, body=CALLEE_SDP, **KAM)),
        Step("query", ng("query", cid, a, b)),
        Step("delete", ng("delete", cid, a)),
        Step("query after delete", ng("query", cid, a, b)),
    ]))
    return s


# ---------------------------------------------------------------------------------------------------
# Comparing.


def sdp_lines(text):
    return [l for l in text.replace("\r\n", "\n").split("\n") if l]


def shape(text):
    """The SDP's lines by type, in order: m= with media/proto/formats, a= by name (rtpmap/fmtp with value)."""
    out = []
    for l in sdp_lines(text):
        kind, _, value = l.partition("=")
        if kind == "m":
            f = value.split()
            out.append("m=%s %s %s" % (f[0], f[2] if len(f) > 2 else "?", " ".join(f[3:])))
        elif kind == "a":
            name, _, v = value.partition(":")
            out.append("a=%s:%s" % (name, v) if name in ("rtpmap", "fmtp") else "a=" + name)
        else:
            out.append(kind)
    return out


# Attributes rtpengine strips and writes again in a place of its own (after the codec attributes, before
# a=ptime): compared by count within each media section, not by position.
REWRITTEN = {"a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive", "a=rtcp", "a=rtcp-mux"}


def sections(tokens):
    """The shape split at m= lines: [session part, media 1, media 2, ...]."""
    out = [[]]
    for t in tokens:
        if t.startswith("m="):
            out.append([])
        out[-1].append(t)
    return out


def compare_sdp(rtpengine_sdp, latchkey_sdp):
    """Differences of structure: lines in order (REWRITTEN ones by count per section)."""
    diffs = []
    ra, la = sections(shape(rtpengine_sdp)), sections(shape(latchkey_sdp))
    if len(ra) != len(la):
        diffs.append("sdp-sections: rtpengine=%d latchkey=%d" % (len(ra) - 1, len(la) - 1))
    for r, l in zip(ra, la):
        sm = difflib.SequenceMatcher(a=[t for t in r if t not in REWRITTEN], b=[t for t in l if t not in REWRITTEN],
                                     autojunk=False)
        for op, i1, i2, j1, j2 in sm.get_opcodes():
            if op != "equal":
                diffs += ["sdp-line rtpengine-only " + t for t in sm.a[i1:i2]]
                diffs += ["sdp-line latchkey-only " + t for t in sm.b[j1:j2]]
        for t in sorted(REWRITTEN):
            n_r, n_l = r.count(t), l.count(t)
            if n_r > n_l:
                diffs.append("sdp-line rtpengine-only " + t)
            elif n_l > n_r:
                diffs.append("sdp-line latchkey-only " + t)
    return diffs


def m_ports(text):
    return tuple(int(l.split()[1]) for l in sdp_lines(text) if l.startswith("m="))


def sdp_checks(request, reply_sdp, relay_ip, port_range, origin):
    """What each server's own SDP must satisfy: {name: bool}."""
    lines = sdp_lines(reply_sdp)
    phone = [l for l in sdp_lines(request.get("sdp", "")) if l.startswith("c=")]
    phone_ip = phone[0].split()[-1] if phone else None
    cs = [l.split()[-1] for l in lines if l.startswith("c=")]
    os_ = [l.split()[5] for l in lines if l.startswith("o=") and len(l.split()) >= 6]
    req_o = [l.split()[5] for l in sdp_lines(request.get("sdp", "")) if l.startswith("o=")]
    ports = m_ports(reply_sdp)
    lo, hi = port_range
    if phone_ip == "0.0.0.0":  # hold, the RFC 2543 way: kept, there is nowhere to send to
        c_check = ("c=0.0.0.0 (hold) is kept", bool(cs) and all(c == "0.0.0.0" for c in cs))
    else:
        c_check = ("c= names the relay, not the phone", bool(cs) and all(c == relay_ip and c != phone_ip for c in cs))
    checks = {
        c_check[0]: c_check[1],
        "m= ports are the relay's": bool(ports) and all(lo <= p <= hi for p in ports),
    }
    rtcp = [l.split(None, 1)[0][len("a=rtcp:"):] for l in lines if l.startswith("a=rtcp:")]
    rtcp_addr = [l.split()[-1] for l in lines if l.startswith("a=rtcp:") and len(l.split()) == 4]
    if rtcp:
        checks["a=rtcp names a relay port (and address)"] = (all(p.isdigit() and lo <= int(p) <= hi for p in rtcp)
                                                             and all(x == relay_ip for x in rtcp_addr))
    if origin:
        checks["o= names the relay (replace-origin)"] = os_ == [relay_ip]
    else:
        checks["o= untouched (no replace-origin)"] = os_ == req_o
    return checks


USED = set()  # indexes of the ALLOW_LIST entries that matched


def allowed(scenario, label, diff):
    for i, (sc, st, d, why) in enumerate(ALLOW_LIST):
        if fnmatch.fnmatchcase(scenario, sc) and fnmatch.fnmatchcase(label, st) and fnmatch.fnmatchcase(diff, d):
            USED.add(i)
            return why
    return None


class Server:
    def __init__(self, name, target, ports):
        host, port = target.rsplit(":", 1)
        self.name, self.ports = name, tuple(int(x) for x in ports.split("-"))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect((host, int(port)))
        self.sock.settimeout(2.0)
        self.sdp_ports = {}  # step label -> m= ports of its SDP reply, per scenario

    def exchange(self, datagram, cookie):
        """The reply datagram to `datagram` (its cookie), or None after 2 s."""
        self.sock.send(datagram)
        deadline = time.time() + 2.0
        while time.time() < deadline:
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            if data.startswith(cookie + b" "):
                return data
        return None


def summarise(raw, cookie):
    """(result, decoded body) of a reply datagram."""
    if raw is None:
        return "NO-REPLY", None
    body = raw[len(cookie) + 1:]
    try:
        d, _ = bdecode(body)
    except (ValueError, IndexError):
        return "UNDECODABLE", None
    if not isinstance(d, dict):
        return "NOT-A-DICT", None
    return str(d.get("result")), d


def run_step(servers, scenario, step, cookie, relay_ip, out):
    """Sends the step to both servers; returns the row: results, differences, notes."""
    request = step.body if isinstance(step.body, dict) else {}
    datagram = cookie + b" " + (bencode(step.body) if isinstance(step.body, dict) else step.body)
    rec = {}
    for name, srv in servers.items():
        raw = srv.exchange(datagram, cookie)
        raw2 = srv.exchange(datagram, cookie) if step.repeat else None
        result, d = summarise(raw, cookie)
        d = d or {}
        r = rec[name] = {"result": result, "body": d, "checks": {}, "props": {}}
        if out:
            out.write(json.dumps({"scenario": scenario, "step": step.label, "server": name,
                                  "request": datagram.decode("latin-1"),
                                  "reply": raw.decode("latin-1") if raw is not None else None,
                                  "retransmission_reply": raw2.decode("latin-1") if raw2 is not None else None}) + "\n")
        if step.repeat:
            r["checks"]["a retransmission gets the same reply bytes"] = raw2 == raw
        if isinstance(d.get("sdp"), str):
            srv.sdp_ports[step.label] = m_ports(d["sdp"])
            origin = step.origin if step.origin is not None else "origin" in request.get("replace", [])
            r["checks"].update(sdp_checks(request, d["sdp"], relay_ip, srv.ports, origin))
        for prop, fn in step.props.items():
            try:
                r["props"][prop] = bool(fn(srv.sdp_ports))
            except KeyError:
                r["props"][prop] = None  # an SDP it compares is missing

    R, L = rec["rtpengine"], rec["latchkey"]
    diffs = []
    if R["result"] != L["result"]:
        diffs.append("result: rtpengine=%s latchkey=%s" % (R["result"], L["result"]))
    rw, lw = "warning" in R["body"], "warning" in L["body"]
    if rw != lw:
        diffs.append("warning: rtpengine=%s latchkey=%s" % ("yes" if rw else "no", "yes" if lw else "no"))
    rk, lk = set(R["body"]) - {"warning"}, set(L["body"]) - {"warning"}
    for k in sorted(rk ^ lk):
        diffs.append("reply-keys %s-only %s" % ("rtpengine" if k in rk else "latchkey", k))
    rs, ls = R["body"].get("sdp"), L["body"].get("sdp")
    if isinstance(rs, str) and isinstance(ls, str):
        diffs += compare_sdp(rs, ls)
    # Each server's own checks: a failure is a difference (also when both fail); a check that does not
    # apply to one server's reply (no SDP, no a=rtcp line) is not.
    for c in sorted(set(R["checks"]) | set(L["checks"])):
        rv, lv = R["checks"].get(c), L["checks"].get(c)
        if rv is False or lv is False:
            diffs.append("check %s: rtpengine=%s latchkey=%s" % (c, rv, lv))
    for prop in step.props:
        rv, lv = R["props"].get(prop), L["props"].get(prop)
        if rv != lv:
            diffs.append("property %s: rtpengine=%s latchkey=%s" % (prop, rv, lv))
    known, unknown = [], []
    for d in diffs:
        why = allowed(scenario, step.label, d)
        (known if why else unknown).append((d, why))
    verdict = "DIFFER" if unknown else "known-difference" if known else "agree"

    def show(r):
        text = r["result"] + ("+warning" if "warning" in r["body"] else "")
        return text

    def note(r):
        return r["body"].get("error-reason") or r["body"].get("warning") or ""

    return {"scenario": scenario, "step": step.label, "rtpengine": show(R), "latchkey": show(L), "verdict": verdict,
            "known": known, "unknown": unknown, "notes": {"rtpengine": note(R), "latchkey": note(L)},
            "props": {p: (R["props"].get(p), L["props"].get(p)) for p in step.props}}


def main():
    p = argparse.ArgumentParser()
    for s in SERVERS:
        p.add_argument("--" + s, required=True)
        p.add_argument("--%s-ports" % s, required=True)
    p.add_argument("--relay-ip", required=True)
    p.add_argument("--out")
    p.add_argument("--only")
    p.add_argument("--verbose", action="store_true", help="the notes (error-reason, warning) of every row")
    a = p.parse_args()
    servers = {s: Server(s, getattr(a, s), getattr(a, s + "_ports")) for s in SERVERS}
    out = open(a.out, "w") if a.out else None
    rows, n = [], 0
    for scenario, steps in scenarios():
        if a.only and a.only not in scenario:
            continue
        for srv in servers.values():
            srv.sdp_ports = {}
        for step in steps:
            n += 1
            rows.append(run_step(servers, scenario, step, b"0_%d_%d" % (PID, n), a.relay_ip, out))
    if out:
        out.close()

    w = [max(len(x), max(len(r[k]) for r in rows)) for x, k in
         (("scenario", "scenario"), ("request", "step"), ("rtpengine", "rtpengine"), ("latchkey", "latchkey"))]
    fmt = "%%-%ds  %%-%ds  %%-%ds  %%-%ds  %%s" % tuple(w)
    print(fmt % ("scenario", "request", "rtpengine", "latchkey", "verdict"))
    print(fmt % tuple("-" * x for x in w + [16]))
    for r in rows:
        print(fmt % (r["scenario"], r["step"], r["rtpengine"], r["latchkey"], r["verdict"]))
        for d, _ in r["unknown"]:
            print("      DIFFER: %s" % d)
        if r["known"]:
            print("      known: " + "; ".join(d for d, _ in r["known"]))
        for prop, (rv, lv) in r["props"].items():
            if rv == lv:  # (a difference is on the line above)
                print("      property %s: both %s" % (prop, rv))
        if a.verbose or r["verdict"] != "agree":
            for s in SERVERS:
                if r["notes"][s]:
                    print("      %s says: %s" % (s, r["notes"][s][:150]))
    counts = {v: sum(1 for r in rows if r["verdict"] == v) for v in ("agree", "known-difference", "DIFFER")}
    print("%d requests: %d agree, %d known differences, %d DIFFER" % (len(rows), counts["agree"],
                                                                     counts["known-difference"], counts["DIFFER"]))
    print("\nknown differences (the allow-list entries that matched):")
    for i, (sc, st, d, why) in enumerate(ALLOW_LIST):
        if i in USED:
            print("  [%s / %s] %s\n      why: %s" % (sc, st, d, why))
    for i, (sc, st, d, why) in enumerate(ALLOW_LIST):
        if i not in USED and not a.only:
            print("note: allow-list entry never used: %s / %s / %s" % (sc, st, d))
    return 1 if counts["DIFFER"] else 0


if __name__ == "__main__":
    sys.exit(main())
