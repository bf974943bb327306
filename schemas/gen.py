#!/usr/bin/env python3
"""gen.py — turn the JSON Schemas in schemas/ into C structs and descriptor tables.

Usage: gen.py --out-h lh_types.h --out-c lh_types.c SCHEMA.json...

The inputs are schemas/envelope.json, every schemas/defs/*.json and every schemas/events/*.json
(meson passes them all). For defs/NAME.json it emits lh_NAME_t and lh_NAME_desc; for
events/A.B.json lh_A_B_t, lh_A_B_desc and LH_EV_A_B, plus the lh_event_types[] table. The generic
codec in common/codec.c walks the descriptors; nothing is emitted per type beyond data.

Only a small, explicit subset of JSON Schema is accepted (see schemas/README.md). Anything else
stops the build with "gen.py: FILE: PATH: why", never silently: a constraint the codec would not
enforce must not look enforced. Standard library only.
"""

import argparse
import json
import os
import re
import sys

C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "true", "false", "_Bool",
    "_Complex", "_Imaginary", "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn",
    "_Static_assert", "_Thread_local", "NULL",
}

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1
MAX_FIELDS = 64  # the codec tracks seen/required fields in one uint64_t

# What the hand-written envelope code in common/codec.c implements (common/event.h's lh_event_t).
ENVELOPE_PROPS = ["v", "id", "type", "plan_id", "task_no", "attempt", "ts_us", "tenant", "actor",
                  "causation_id", "body"]
ENVELOPE_REQUIRED = {"v", "id", "type", "plan_id", "ts_us", "actor", "body"}

PROP_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
DEF_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
EVENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

ANNOTATIONS = {"description", "title", "$comment"}
TOP_KEYS = ANNOTATIONS | {"$id", "$schema", "type", "additionalProperties", "required",
                          "properties"}


class SchemaError(Exception):
    pass


def fail(path, where, why):
    raise SchemaError(f"{path}: {where}: {why}" if where else f"{path}: {why}")


def c_str(s):
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif 0x20 <= o < 0x7F:
            out.append(ch)
        else:
            for b in ch.encode("utf-8"):
                out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def c_comment(s):
    return " ".join(s.replace("*/", "* /").split())


class Field:
    """One property: kind is string/int/number/bool/struct/json; array says it is a list."""

    def __init__(self, name):
        self.name = name
        self.kind = None
        self.array = False
        self.required = False
        self.imin = self.imax = None
        self.dmin = self.dmax = None
        self.enum = None
        self.ref = None  # def name for kind struct
        self.doc = ""


class Type:
    def __init__(self, name, cname, path, is_event):
        self.name = name      # $id
        self.cname = cname    # lh_<cname>_t
        self.path = path
        self.is_event = is_event
        self.strict = True
        self.fields = []
        self.doc = ""


def check_keys(path, where, node, allowed):
    for k in node:
        if k not in allowed:
            fail(path, where, f"unsupported keyword \"{k}\" (allowed here: "
                 f"{', '.join(sorted(allowed))})")


def int_bound(path, where, node, key):
    v = node.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        fail(path, where, f"\"{key}\" must be an integer")
    if v < INT64_MIN or v > INT64_MAX:
        fail(path, where, f"\"{key}\" does not fit int64")
    return v


def num_bound(path, where, node, key):
    v = node.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        fail(path, where, f"\"{key}\" must be a number")
    return float(v)


def parse_value(path, where, node, f, in_array):
    """Fill f's kind and constraints from one property (or items) schema."""
    if not isinstance(node, dict):
        fail(path, where, "schema must be an object")
    if "$ref" in node:
        check_keys(path, where, node, ANNOTATIONS | {"$ref"})
        ref = node["$ref"]
        if not isinstance(ref, str) or not DEF_NAME_RE.match(ref):
            fail(path, where, f"$ref must name a def by its $id (e.g. \"usage\"), got {ref!r}")
        f.kind, f.ref = "struct", ref
        return
    t = node.get("type")
    if t is None:
        check_keys(path, where, node, ANNOTATIONS)
        f.kind = "json"
        return
    if not isinstance(t, str):
        fail(path, where, "\"type\" must be a single type name (type lists are not supported)")
    if t == "string":
        check_keys(path, where, node, ANNOTATIONS | {"type", "enum", "minLength", "maxLength"})
        f.kind = "string"
        f.imin = int_bound(path, where, node, "minLength")
        f.imax = int_bound(path, where, node, "maxLength")
        for b in (f.imin, f.imax):
            if b is not None and b < 0:
                fail(path, where, "string length bounds must be >= 0")
        if "enum" in node:
            e = node["enum"]
            if not isinstance(e, list) or not e or not all(isinstance(x, str) for x in e):
                fail(path, where, "\"enum\" must be a non-empty list of strings")
            if len(set(e)) != len(e):
                fail(path, where, "\"enum\" has duplicate values")
            for x in e:
                if "\0" in x:
                    fail(path, where, "\"enum\" value contains NUL")
            f.enum = e
    elif t == "integer":
        check_keys(path, where, node, ANNOTATIONS | {"type", "minimum", "maximum"})
        f.kind = "int"
        f.imin = int_bound(path, where, node, "minimum")
        f.imax = int_bound(path, where, node, "maximum")
    elif t == "number":
        check_keys(path, where, node, ANNOTATIONS | {"type", "minimum", "maximum"})
        f.kind = "number"
        f.dmin = num_bound(path, where, node, "minimum")
        f.dmax = num_bound(path, where, node, "maximum")
    elif t == "boolean":
        check_keys(path, where, node, ANNOTATIONS | {"type"})
        f.kind = "bool"
    elif t == "array":
        if in_array:
            fail(path, where, "arrays of arrays are not supported (wrap the inner array in a def)")
        check_keys(path, where, node, ANNOTATIONS | {"type", "items"})
        if "items" not in node:
            fail(path, where, "an array needs \"items\"")
        f.array = True
        parse_value(path, where + ".items", node["items"], f, True)
        # the element's own annotations are documentation only
        return
    elif t == "object":
        fail(path, where, "inline objects are not supported: move it to schemas/defs/ and use "
             "\"$ref\", or drop \"type\" for free-form JSON")
    else:
        fail(path, where, f"unsupported type \"{t}\"")
    for (lo, hi) in ((f.imin, f.imax), (f.dmin, f.dmax)):
        if lo is not None and hi is not None and lo > hi:
            fail(path, where, "minimum is greater than maximum")


def load_type(path, kind):
    base = os.path.basename(path)
    if not base.endswith(".json"):
        fail(path, "", "schema files must end in .json")
    stem = base[:-5]
    try:
        with open(path, encoding="utf-8") as fp:
            doc = json.load(fp, object_pairs_hook=reject_duplicates(path))
    except json.JSONDecodeError as e:
        fail(path, "", f"invalid JSON: {e}")
    if not isinstance(doc, dict):
        fail(path, "", "top level must be an object")
    if kind == "event":
        if not EVENT_NAME_RE.match(stem):
            fail(path, "", "event file names are lower-case words joined by dots, e.g. "
                 "plan.created.json")
        cname = stem.replace(".", "_")
    else:
        if not DEF_NAME_RE.match(stem):
            fail(path, "", "def file names are lower_snake_case, e.g. task_spec.json")
        cname = stem
    check_keys(path, "", doc, TOP_KEYS)
    if doc.get("$id") != stem:
        fail(path, "$id", f"must equal the file name stem \"{stem}\"")
    if "title" in doc and doc["title"] != stem:
        fail(path, "title", f"must equal \"{stem}\" when present")
    if doc.get("type") != "object":
        fail(path, "type", "must be \"object\"")
    ap = doc.get("additionalProperties")
    if not isinstance(ap, bool):
        fail(path, "additionalProperties", "must be given explicitly as true or false "
             "(false: unknown keys are errors; true: unknown keys are skipped and not kept)")
    t = Type(stem, cname, path, kind == "event")
    t.strict = not ap
    t.doc = doc.get("description", "")
    props = doc.get("properties", {})
    if not isinstance(props, dict):
        fail(path, "properties", "must be an object")
    req = doc.get("required", [])
    if not isinstance(req, list) or not all(isinstance(x, str) for x in req):
        fail(path, "required", "must be a list of property names")
    for r in req:
        if r not in props:
            fail(path, "required", f"names \"{r}\", which is not a property")
    if len(props) > MAX_FIELDS:
        fail(path, "properties", f"more than {MAX_FIELDS} properties")
    names = set()
    for name, node in props.items():
        where = f"properties.{name}"
        if not PROP_NAME_RE.match(name) or name in C_KEYWORDS:
            fail(path, where, "property names must be lower_snake_case C identifiers and not "
                 "C keywords")
        f = Field(name)
        parse_value(path, where, node, f, False)
        f.required = name in req
        f.doc = node.get("description", "") if isinstance(node, dict) else ""
        t.fields.append(f)
        names.add(name)
    for f in t.fields:
        if f.kind == "struct" and not f.array and "has_" + f.name in names:
            fail(path, f"properties.has_{f.name}", f"collides with the presence flag of "
                 f"\"{f.name}\"")
    return t


def reject_duplicates(path):
    def hook(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                fail(path, "", f"duplicate key \"{k}\"")
            d[k] = v
        return d
    return hook


def check_envelope(path, types_by_name):
    with open(path, encoding="utf-8") as fp:
        doc = json.load(fp, object_pairs_hook=reject_duplicates(path))
    props = doc.get("properties", {})
    if list(props) != ENVELOPE_PROPS:
        fail(path, "properties", "the envelope is hand-coded in common/codec.c and "
             f"common/event.h; its properties must be exactly {', '.join(ENVELOPE_PROPS)} "
             "(change the codec together with this file)")
    if set(doc.get("required", [])) != ENVELOPE_REQUIRED:
        fail(path, "required", f"must be {', '.join(sorted(ENVELOPE_REQUIRED))}")
    if doc.get("additionalProperties") is not False:
        fail(path, "additionalProperties", "must be false")
    if props["actor"].get("$ref") != "actor" or "actor" not in types_by_name:
        fail(path, "properties.actor", "must be {\"$ref\": \"actor\"} and defs/actor.json exist")
    if props["v"].get("const") != 1:
        fail(path, "properties.v", "const must be 1 (LH_ENVELOPE_VERSION in common/event.h)")
    tenant_max = props["tenant"].get("maxLength")
    if not isinstance(tenant_max, int) or tenant_max <= 0:
        fail(path, "properties.tenant", "needs a positive maxLength")
    task_min = props["task_no"].get("minimum")
    attempt_min = props["attempt"].get("minimum")
    if task_min != 0 or attempt_min != 1:
        fail(path, "properties", "task_no minimum must be 0 and attempt minimum 1 "
             "(LH_NO_TASK and 'attempt 0 = absent' in common/event.h rely on it)")
    return {"tenant_max": tenant_max}


def order_types(types, by_name):
    """Definitions embedding another struct by value must come after it; arrays use pointers."""
    done, order, visiting = set(), [], set()

    def visit(t):
        if t.name in done:
            return
        if t.name in visiting:
            fail(t.path, "", "a $ref cycle through embedded (non-array) fields cannot be a C "
                 "struct; put one of the references in an array")
        visiting.add(t.name)
        for f in t.fields:
            if f.kind == "struct" and not f.array:
                visit(by_name[f.ref])
        visiting.discard(t.name)
        done.add(t.name)
        order.append(t)

    for t in types:
        visit(t)
    return order


def c_elem_type(f):
    return {
        "string": "const char *",
        "int": "int64_t ",
        "number": "double ",
        "bool": "bool ",
        "json": "json_t *",
        "struct": f"lh_{f.ref}_t " if f.ref else None,
    }[f.kind]


def constraint_doc(f):
    bits = []
    if f.required:
        bits.append("required")
    if f.array:
        bits.append("each element:")
    if f.enum:
        bits.append("one of " + ", ".join(f.enum))
    if f.kind == "string":
        if f.imin is not None:
            bits.append(f"min length {f.imin}")
        if f.imax is not None:
            bits.append(f"max length {f.imax}")
    elif f.kind == "int":
        if f.imin is not None:
            bits.append(f">= {f.imin}")
        if f.imax is not None:
            bits.append(f"<= {f.imax}")
    elif f.kind == "number":
        if f.dmin is not None:
            bits.append(f">= {f.dmin:g}")
        if f.dmax is not None:
            bits.append(f"<= {f.dmax:g}")
    if f.array and bits[-1] == "each element:":
        bits.pop()
    if f.doc:
        bits.append(f.doc)
    return c_comment("; ".join(bits).replace(":;", ""))


def macro(s):
    return re.sub(r"[^A-Za-z0-9]", "_", s).upper()


def emit_header(types, events, env):
    o = []
    w = o.append
    w("/* lh_types.h — GENERATED by schemas/gen.py from the JSON Schemas in schemas/; do not edit. */")
    w("#ifndef LH_TYPES_H")
    w("#define LH_TYPES_H")
    w("")
    w("#include <jansson.h>")
    w("#include <stdbool.h>")
    w("#include <stddef.h>")
    w("#include <stdint.h>")
    w("")
    w('#include "codec_desc.h"')
    w("")
    w(f"#define LH_ENVELOPE_TENANT_MAX_LEN {env['tenant_max']}")
    w("")
    for t in sorted(types, key=lambda t: t.cname):
        w(f"typedef struct lh_{t.cname} lh_{t.cname}_t;")
    w("")
    for t in types:
        src = ("events/" if t.is_event else "defs/") + t.name + ".json"
        w(f"/* {src}{': ' + c_comment(t.doc) if t.doc else ''} */")
        w(f"struct lh_{t.cname} {{")
        if not t.fields:
            w("\tchar unused_; /* no properties; C needs a member */")
        for f in t.fields:
            et = c_elem_type(f)
            doc = constraint_doc(f)
            cmt = f" /* {doc} */" if doc else ""
            if f.array:
                w(f"\tstruct {{")
                w(f"\t\tsize_t n;")
                w(f"\t\t{et}*v;")
                w(f"\t}} {f.name};{cmt}")
            elif f.kind == "struct":
                w(f"\tbool has_{f.name};")
                w(f"\t{et}{f.name};{cmt}")
            else:
                w(f"\t{et}{f.name};{cmt}")
        w("};")
        w(f"extern const lh_desc_t lh_{t.cname}_desc;")
        for f in t.fields:
            if f.enum:
                seen = set()
                for v in f.enum:
                    m = f"LH_{macro(t.cname)}_{macro(f.name)}_{macro(v)}"
                    if m in seen:
                        fail(t.path, f"properties.{f.name}.enum", f"values map to the same C "
                             f"macro {m}")
                    seen.add(m)
                    w(f"#define {m} {c_str(v)}")
        w("")
    w("typedef enum lh_event_type {")
    w("\tLH_EV__NONE = 0,")
    for e in events:
        w(f"\tLH_EV_{macro(e.cname)}, /* {e.name} */")
    w("\tLH_EV__COUNT")
    w("} lh_event_type_t;")
    w("")
    w("/* Indexed by lh_event_type_t; rows 1.. are sorted by name. Row 0 is {NULL, 0, NULL}. */")
    w("extern const lh_event_type_info_t lh_event_types[LH_EV__COUNT];")
    w("")
    w("#endif")
    return "\n".join(o) + "\n"


KIND_C = {"string": "LH_KIND_STRING", "int": "LH_KIND_INT", "number": "LH_KIND_NUMBER",
          "bool": "LH_KIND_BOOL", "struct": "LH_KIND_STRUCT", "json": "LH_KIND_JSON"}


def c_double(x):
    r = repr(float(x))
    return r if ("." in r or "e" in r or "inf" in r or "nan" in r) else r + ".0"


def emit_source(types, events):
    o = []
    w = o.append
    w("/* lh_types.c — GENERATED by schemas/gen.py from the JSON Schemas in schemas/; do not edit. */")
    w('#include "lh_types.h"')
    w("")
    w("#include <stddef.h>")
    w("")
    for t in types:
        ct = f"lh_{t.cname}_t"
        for f in t.fields:
            if f.enum:
                vals = ", ".join(c_str(v) for v in f.enum)
                w(f"static const char *const {t.cname}_{f.name}_values[] = {{{vals}}};")
            if f.array:
                w(f"_Static_assert(offsetof({ct}, {f.name}.n) == offsetof({ct}, {f.name}) + "
                  f"offsetof(lh_array_t, n) && offsetof({ct}, {f.name}.v) == offsetof({ct}, "
                  f"{f.name}) + offsetof(lh_array_t, v), \"array layout\");")
        w(f"static const lh_field_desc_t {t.cname}_fields[] = {{")
        if not t.fields:
            w("\t{0}")
        for f in t.fields:
            flags = []
            if f.required:
                flags.append("LH_FIELD_REQUIRED")
            if f.array:
                flags.append("LH_FIELD_ARRAY")
            lo = f.imin if f.kind in ("int", "string") else f.dmin
            hi = f.imax if f.kind in ("int", "string") else f.dmax
            if lo is not None:
                flags.append("LH_FIELD_MIN")
            if hi is not None:
                flags.append("LH_FIELD_MAX")
            parts = [f".name = {c_str(f.name)}", f".name_len = {len(f.name)}",
                     f".kind = {KIND_C[f.kind]}",
                     f".flags = {' | '.join(flags) if flags else '0'}",
                     f".offset = offsetof({ct}, {f.name})"]
            if f.kind == "struct" and not f.array:
                parts.append(f".has_offset = offsetof({ct}, has_{f.name})")
            if f.kind in ("int", "string"):
                if lo is not None:
                    parts.append(f".imin = INT64_C({lo})" if lo != INT64_MIN
                                 else ".imin = INT64_MIN")
                if hi is not None:
                    parts.append(f".imax = INT64_C({hi})")
            elif f.kind == "number":
                if lo is not None:
                    parts.append(f".dmin = {c_double(lo)}")
                if hi is not None:
                    parts.append(f".dmax = {c_double(hi)}")
            if f.enum:
                parts.append(f".enum_values = {t.cname}_{f.name}_values")
                parts.append(f".n_enum = {len(f.enum)}")
            if f.kind == "struct":
                parts.append(f".sub = &lh_{f.ref}_desc")
            w("\t{" + ", ".join(parts) + "},")
        w("};")
        mask = 0
        for i, f in enumerate(t.fields):
            if f.required:
                mask |= 1 << i
        w(f"const lh_desc_t lh_{t.cname}_desc = {{")
        w(f"\t.name = {c_str(t.name)},")
        w(f"\t.size = sizeof({ct}),")
        w(f"\t.strict = {'true' if t.strict else 'false'},")
        w(f"\t.n_fields = {len(t.fields)},")
        w(f"\t.required_mask = UINT64_C(0x{mask:x}),")
        w(f"\t.fields = {t.cname}_fields,")
        w("};")
        w("")
    w("const lh_event_type_info_t lh_event_types[LH_EV__COUNT] = {")
    w("\t{NULL, 0, NULL},")
    for e in events:
        w(f"\t{{{c_str(e.name)}, LH_EV_{macro(e.cname)}, &lh_{e.cname}_desc}},")
    w("};")
    return "\n".join(o) + "\n"


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fp:
        fp.write(text)
    os.replace(tmp, path)


def generate(inputs):
    envelope = None
    defs, events = [], []
    dirs = {}
    for p in inputs:
        parent = os.path.basename(os.path.dirname(os.path.abspath(p)))
        if os.path.basename(p) == "envelope.json" and parent != "defs" and parent != "events":
            envelope = p
        elif parent == "defs":
            defs.append(p)
            dirs["defs"] = os.path.dirname(os.path.abspath(p))
        elif parent == "events":
            events.append(p)
            dirs["events"] = os.path.dirname(os.path.abspath(p))
        else:
            fail(p, "", "not in schemas/defs/ or schemas/events/ and not envelope.json")
    if envelope is None:
        fail("schemas/envelope.json", "", "not given to gen.py")
    given = {os.path.abspath(p) for p in inputs}
    for sub, d in dirs.items():
        for name in sorted(os.listdir(d)):
            full = os.path.join(d, name)
            if name.endswith(".json") and full not in given:
                fail(full, "", "exists but is not listed in schemas/meson.build")

    types = [load_type(p, "def") for p in sorted(defs)]
    types += [load_type(p, "event") for p in sorted(events)]
    by_name, by_cname = {}, {}
    for t in types:
        if t.cname in by_cname:
            fail(t.path, "", f"C name lh_{t.cname}_t collides with {by_cname[t.cname].path}")
        by_cname[t.cname] = t
        if not t.is_event:
            by_name[t.name] = t
    for t in types:
        for f in t.fields:
            if f.kind == "struct" and f.ref not in by_name:
                fail(t.path, f"properties.{f.name}", f"$ref \"{f.ref}\": no schemas/defs/"
                     f"{f.ref}.json")
    env = check_envelope(envelope, by_name)
    ordered = order_types(types, by_name)
    evs = sorted((t for t in types if t.is_event), key=lambda t: t.name)
    return emit_header(ordered, evs, env), emit_source(ordered, evs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-h", required=True)
    ap.add_argument("--out-c", required=True)
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args()
    try:
        h, c = generate(args.inputs)
    except SchemaError as e:
        print(f"gen.py: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"gen.py: {e}", file=sys.stderr)
        return 1
    write(args.out_h, h)
    write(args.out_c, c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
