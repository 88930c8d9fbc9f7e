# Latchkey registration integration for Kamailio 5.6 (app_python3, Debian's kamailio-python3-modules).
#
# Called from the native kamailio.cfg as python_exec("register") in the REGISTER branch, before
# save("location"). For each Contact of the REGISTER it calls latchkey-control's AllocateBinding
# (NatControlService, gRPC with mutual TLS, Debian's python3-grpcio) with what Kamailio saw: the AOR,
# the Contact exactly as sent, the transport, the source the REGISTER came from, Kamailio's own
# receiving socket (Latchkey's relay sends its keepalive OPTIONS from that address), the top Via, the
# expiry and the User-Agent. From the answer it leaves, for save() to use:
#
#   $avp(RECEIVED)       registrar's received_avp: the effective Contact Latchkey computed (the NAT's
#                        public ip:port) when the verdict is BEHIND_NAT; lookup() then sends to it
#                        ($du), exactly as after nathelper's fix_nated_register()
#   $xavp(reg=>expires)  registrar's xavp_cfg: the expiry Latchkey suggests (shortened for endpoints
#                        behind NAT), which save() grants and puts in the 200 OK
#
# An unregister (expires 0) is AllocateBinding with expires 0; "Contact: *" releases every binding
# of the AOR (ListBindings + ReleaseBinding). See README.md for the return codes and settings.
#
# Settings (environment of the Kamailio process; Debian's unit reads /etc/default/kamailio.d/*):
#   LATCHKEY_CONTROL        host:port of latchkey-control's NatControlService (default 127.0.0.1:7400)
#   LATCHKEY_CA, LATCHKEY_CERT, LATCHKEY_KEY
#                           PEM files for mutual TLS: the CA, and a PBX identity's certificate and key
#                           (scripts/pki.sh DIR issue pbx NAME). All three unset: plaintext (development)
#   LATCHKEY_TLS_SERVER_NAME  the name checked in control's certificate when it is not the host of
#                           LATCHKEY_CONTROL (pki.sh certificates name localhost and 127.0.0.1)
#   LATCHKEY_TIMEOUT_MS     deadline of each call, retries included (default 500)
#   LATCHKEY_FAIL_OPEN      1 (default): when control cannot be asked, log one line and let Kamailio
#                           save as it would without Latchkey; 0: refuse the REGISTER (python_exec
#                           returns -1, the cfg answers 503)
#   LATCHKEY_PROTO_PATH     directory holding latchkey/v1/*_pb2.py (protoc --python_out); default: the
#                           directory of this file
#   LATCHKEY_RECEIVED_AVP   default $avp(RECEIVED) (the registrar/nathelper received_avp)
#   LATCHKEY_XAVP_CFG       default reg (the registrar's xavp_cfg)
#   LATCHKEY_DEFAULT_EXPIRES  expiry asked for when the REGISTER names none (default 3600, as the
#                           registrar's default_expires)

import json
import os
import re
import sys

import KSR

RET_PUBLIC = 1  # Latchkey answered: not behind NAT, or unregistered
RET_NAT = 2  # Latchkey answered: behind NAT, $avp(RECEIVED) set
RET_FAILED_OPEN = 3  # control could not be asked (or refused); nothing set, save as plain Kamailio
RET_REFUSED = -1  # control could not be asked and LATCHKEY_FAIL_OPEN=0

SERVICE = "/latchkey.v1.NatControlService/"
# docs/API.md: UNAVAILABLE means nothing changed, and every NatControlService call is safe to repeat.
SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "latchkey.v1.NatControlService"}],
        "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "2s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]
})


def _env(name, default):
    value = os.environ.get(name, "")
    return value if value else default


def _flag(name, default):
    return _env(name, default).strip().lower() in ("1", "yes", "true", "on")


def _log(level, text):
    getattr(KSR, level)("latchkey: %s\n" % text)


# --- SIP text helpers ----------------------------------------------------------------------------

def split_top_level(value, sep=","):
    """Splits a header value on `sep` outside quotes and <...>."""
    parts, cur, quoted, angle, i = [], [], False, False, 0
    while i < len(value):
        c = value[i]
        if quoted:
            cur.append(c)
            if c == "\\" and i + 1 < len(value):
                cur.append(value[i + 1])
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
            cur.append(c)
        elif c == "<":
            angle = True
            cur.append(c)
        elif c == ">":
            angle = False
            cur.append(c)
        elif c == sep and not angle:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    tail = "".join(cur).strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]


def contact_uri(contact):
    """The URI of a Contact value (name-addr or addr-spec), without header parameters."""
    if "<" in contact:
        return contact[contact.index("<") + 1:contact.index(">", contact.index("<"))].strip()
    return contact.split(";", 1)[0].strip()


def contact_header_params(contact):
    """The header parameters (after the URI) of a Contact value, as a dict with lower-cased names."""
    if "<" in contact:
        rest = contact[contact.index(">", contact.index("<")) + 1:]
    else:
        rest = contact.partition(";")[2]
    params = {}
    for p in split_top_level(rest, ";"):
        name, _, value = p.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params


_HOSTPORT = re.compile(r"^(sips?):(?:[^@;?]*@)?(\[[^\]]+\]|[^:;?>]+)(?::(\d+))?", re.IGNORECASE)


def received_uri(effective_contact, proto):
    """What nathelper's fix_nated_register() would store, from Latchkey's effective Contact:
    sip:HOST:PORT, plus ;transport= for anything but UDP."""
    m = _HOSTPORT.match(contact_uri(effective_contact))
    if not m:
        return None
    scheme, host, port = m.group(1).lower(), m.group(2), m.group(3)
    uri = "%s:%s" % (scheme, host) + (":" + port if port else "")
    if proto and proto != "udp":
        uri += ";transport=" + proto
    return uri


def bare_ip(ip):
    return ip[1:-1] if ip.startswith("[") and ip.endswith("]") else ip


# --- gRPC ----------------------------------------------------------------------------------------

class Control:
    """One channel per Kamailio process, created on first use (after the fork: gRPC Python is not
    fork-safe, so nothing of it may exist in the process that forks the SIP workers)."""

    def __init__(self):
        self.pid = None
        self.channel = None
        self.calls = {}
        self.pb = None
        self.types = None
        self.duration = None
        self.timeout = int(_env("LATCHKEY_TIMEOUT_MS", "500")) / 1000.0

    def _connect(self):
        import grpc  # noqa: imported here, in the SIP worker, never before the fork
        from google.protobuf import duration_pb2
        path = _env("LATCHKEY_PROTO_PATH", os.path.dirname(os.path.abspath(__file__)))
        if path not in sys.path:
            sys.path.insert(0, path)
        from latchkey.v1 import nat_control_pb2, types_pb2
        self.grpc, self.pb, self.types, self.duration = grpc, nat_control_pb2, types_pb2, duration_pb2

        target = _env("LATCHKEY_CONTROL", "127.0.0.1:7400")
        options = [("grpc.service_config", SERVICE_CONFIG), ("grpc.enable_retries", 1),
                   ("grpc.primary_user_agent", "latchkey-kamailio")]
        files = [_env(n, "") for n in ("LATCHKEY_CA", "LATCHKEY_CERT", "LATCHKEY_KEY")]
        if any(files):
            if not all(files):
                raise RuntimeError("LATCHKEY_CA, LATCHKEY_CERT and LATCHKEY_KEY go together")
            ca, cert, key = (open(f, "rb").read() for f in files)
            credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                       certificate_chain=cert)
            name = _env("LATCHKEY_TLS_SERVER_NAME", "")
            if name:
                options.append(("grpc.ssl_target_name_override", name))
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        pb = nat_control_pb2
        for method, request, response in (
                ("AllocateBinding", pb.AllocateBindingRequest, pb.AllocateBindingResponse),
                ("ListBindings", pb.ListBindingsRequest, pb.ListBindingsResponse),
                ("ReleaseBinding", pb.ReleaseBindingRequest, pb.ReleaseBindingResponse)):
            self.calls[method] = self.channel.unary_unary(SERVICE + method,
                                                          request_serializer=request.SerializeToString,
                                                          response_deserializer=response.FromString)
        self.pid = os.getpid()
        _log("info", "pid %d: channel to latchkey-control at %s (%s)" %
             (self.pid, target, "mutual TLS" if any(files) else "plaintext"))

    def call(self, method, request):
        if self.pid != os.getpid():
            self._connect()
        return self.calls[method](request, timeout=self.timeout)


# --- The handler app_python3 calls ---------------------------------------------------------------

class LatchkeyRegistrar:
    def __init__(self):
        self.control = Control()
        self.fail_open = _flag("LATCHKEY_FAIL_OPEN", "1")
        self.received_avp = _env("LATCHKEY_RECEIVED_AVP", "$avp(RECEIVED)")
        self.xavp_cfg = _env("LATCHKEY_XAVP_CFG", "reg")
        self.default_expires = int(_env("LATCHKEY_DEFAULT_EXPIRES", "3600"))

    def child_init(self, rank):
        return 0

    def register(self, msg):
        """python_exec("register"): 1 public / unregistered, 2 behind NAT ($avp(RECEIVED) set),
        3 control not asked (fail open), -1 refused (fail closed). Never 0 (that would end the route)."""
        try:
            return self._register()
        except Exception as e:  # control unreachable, an error status, a malformed message
            what = self._describe(e)
            if self.fail_open:
                _log("warn", "REGISTER of %s from %s:%s saved without Latchkey: %s" %
                     (KSR.pv.get("$tu"), KSR.pv.get("$si"), KSR.pv.get("$sp"), what))
                return RET_FAILED_OPEN
            _log("err", "REGISTER of %s from %s:%s refused: %s" %
                 (KSR.pv.get("$tu"), KSR.pv.get("$si"), KSR.pv.get("$sp"), what))
            return RET_REFUSED

    @staticmethod
    def _describe(e):
        code = getattr(e, "code", None)
        if callable(code):
            try:
                return "%s: %s" % (e.code().name, e.details())
            except Exception:
                pass
        return "%s: %s" % (type(e).__name__, e)

    def _aor(self):
        scheme = "sips" if (KSR.pv.get("$tu") or "").lower().startswith("sips:") else "sip"
        user, domain = KSR.pv.get("$tU"), KSR.pv.get("$td")
        return "%s:%s@%s" % (scheme, user, domain) if user else "%s:%s" % (scheme, domain)

    def _contacts(self):
        values = []
        count = KSR.pv.get("$hdrc(Contact)") or 0
        for i in range(int(count)):
            value = KSR.pv.get("$(hdr(Contact)[%d])" % i)
            if value:
                values.extend(split_top_level(value))
        return values

    def _register(self):
        aor = self._aor()
        proto = (KSR.pv.get("$pr") or "udp").lower()
        contacts = self._contacts()
        if not contacts:
            return RET_PUBLIC  # a query of the bindings: nothing changes
        header_expires = KSR.pv.get("$hdr(Expires)")
        header_expires = int(header_expires.strip()) if header_expires and header_expires.strip().isdigit() \
            else None

        if contacts == ["*"]:
            return self._release_all(aor)

        # Touch the channel first so that the message classes are loaded.
        if self.control.pid != os.getpid():
            self.control._connect()
        pb, types = self.control.pb, self.control.types

        transport = {"udp": types.TRANSPORT_UDP, "tcp": types.TRANSPORT_TCP, "tls": types.TRANSPORT_TLS,
                     "ws": types.TRANSPORT_WS, "wss": types.TRANSPORT_WS}.get(proto, types.TRANSPORT_UNSPECIFIED)
        vias = split_top_level(KSR.pv.get("$hdr(Via)") or "")
        source = types.SocketAddress(ip=bare_ip(KSR.pv.get("$si")), port=int(KSR.pv.get("$sp")))
        registrar = types.SocketAddress(ip=bare_ip(KSR.pv.get("$Ri")), port=int(KSR.pv.get("$Rp")))
        user_agent = KSR.pv.get("$ua") or ""

        received, granted, unregistering, results = None, None, False, []
        for contact in contacts:
            params = contact_header_params(contact)
            expires = params.get("expires", "")
            if expires.isdigit():
                expires = int(expires)
            elif header_expires is not None:
                expires = header_expires
            else:
                expires = self.default_expires
            request = pb.AllocateBindingRequest(aor=aor, contact=contact, transport=transport, source=source,
                                                registrar=registrar, via=vias[0] if vias else "",
                                                expires=self.control.duration.Duration(seconds=expires),
                                                user_agent=user_agent)
            try:
                response = self.control.call("AllocateBinding", request)
            except Exception as e:
                # Unregistering a contact control never knew (registered while it was down): done.
                if expires == 0 and getattr(e, "code", None) and e.code() == self.control.grpc.StatusCode.NOT_FOUND:
                    unregistering = True
                    results.append("%s unregistered (unknown to Latchkey)" % contact_uri(contact))
                    continue
                raise
            binding = response.binding
            if expires == 0:
                unregistering = True
                results.append("%s unregistered" % contact_uri(contact))
                continue
            suggested = response.suggested_expires.seconds or binding.expires.seconds or expires
            granted = suggested if granted is None else min(granted, suggested)
            nat = binding.verdict.state == types.NAT_STATE_BEHIND_NAT
            if nat and received is None:
                received = received_uri(binding.effective_contact, proto)
            results.append("%s %s%s, expires %d of %d, keepalive %s, binding %s" % (
                contact_uri(contact), "behind NAT" if nat else "not behind NAT",
                " (effective contact %s)" % binding.effective_contact if nat else "", suggested, expires,
                types.KeepaliveMethod.Name(binding.keepalive.method).replace("KEEPALIVE_METHOD_", ""),
                binding.binding_id))

        # The registrar applies $xavp(reg=>expires) to every contact of the REGISTER: not when one of
        # them unregisters (it would be kept instead); those REGISTERs get the expiries they asked for.
        if granted is not None and not unregistering:
            KSR.pv.seti("$xavp(%s=>expires)" % self.xavp_cfg, int(granted))
        if received:
            KSR.pv.sets(self.received_avp, received)
        _log("info", "REGISTER %s from %s:%s: %s%s" % (
            aor, source.ip, source.port, "; ".join(results),
            "; received %s" % received if received else ""))
        return RET_NAT if received else RET_PUBLIC

    def _release_all(self, aor):
        """Contact: * (with Expires: 0): every binding this PBX holds for the AOR."""
        if self.control.pid != os.getpid():
            self.control._connect()
        pb = self.control.pb
        released, token = 0, ""
        while True:
            page = self.control.call("ListBindings", pb.ListBindingsRequest(aor=aor, page_size=1000,
                                                                             page_token=token))
            for binding in page.bindings:
                self.control.call("ReleaseBinding", pb.ReleaseBindingRequest(binding_id=binding.binding_id))
                released += 1
            token = page.next_page_token
            if not token:
                break
        _log("info", "REGISTER %s Contact *: released %d binding(s)" % (aor, released))
        return RET_PUBLIC


def mod_init():
    return LatchkeyRegistrar()
