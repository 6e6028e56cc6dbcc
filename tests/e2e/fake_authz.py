"""A deliberately misbehaving ext_authz server, to test the shipped Envoy configuration's own
defences (Warrant itself refuses such headers when the policy loads, so it cannot be used for
this). It allows every request and sets the headers the request lists in its
`x-test-set-headers` header (JSON: a list of [name, value]).

It speaks the protobuf wire format by hand (field numbers from envoy/service/auth/v3/
external_auth.proto, attribute_context.proto and envoy/config/core/v3/base.proto): the Python
packages of Envoy's protos (xds-protos) ship their own copy of the OpenTelemetry protos, which
would replace the one the tracing tests' collector needs."""

import json
from concurrent import futures

import grpc

CHECK = "/envoy.service.auth.v3.Authorization/Check"
OVERWRITE_IF_EXISTS_OR_ADD = 2


def fields(message):
    """(field number, value) pairs of a protobuf message: bytes for length-delimited fields,
    ints for varints; fixed-width fields are skipped."""
    i = 0
    while i < len(message):
        key, i = varint(message, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(message, i)
        elif wire == 2:
            length, i = varint(message, i)
            value, i = message[i:i + length], i + length
        else:
            i += {1: 8, 5: 4}[wire]
            continue
        yield number, value


def varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def field(message, number):
    return next((v for n, v in fields(message) if n == number), b"")


def request_headers(check_request):
    # CheckRequest.attributes(1) -> AttributeContext.request(4) -> Request.http(2) -> headers(3)
    http = field(field(field(check_request, 1), 4), 2)
    entries = (dict(fields(entry)) for n, entry in fields(http) if n == 3)
    return {e.get(1, b"").decode(): e.get(2, b"").decode() for e in entries}


def encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def message(number, payload):
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def check_response(headers):
    options = b"".join(
        message(2, message(1, message(1, name.encode()) + message(2, value.encode()))
                + encode_varint(3 << 3) + encode_varint(OVERWRITE_IF_EXISTS_OR_ADD))
        for name, value in headers
    )
    # status(1): code OK (all defaults); ok_response(3): headers(2)
    return message(1, b"") + message(3, options)


def check(request, context):
    wanted = json.loads(request_headers(request).get("x-test-set-headers", "[]"))
    return check_response(wanted)


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(check)  # raw bytes in and out
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "envoy.service.auth.v3.Authorization", {"Check": handler})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server
