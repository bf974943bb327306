#!/usr/bin/env python3
"""test_schema_gen.py — schemas/gen.py accepts the real schemas and refuses what it cannot enforce.

Usage: test_schema_gen.py SCHEMAS_DIR (the repository's schemas/). Each bad case copies the real
schemas into a temporary tree, adds or breaks one file, runs gen.py and checks that it fails with
a message naming the file and the path inside it. Standard library only.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

SCHEMAS = os.path.abspath(sys.argv[1])
GEN = os.path.join(SCHEMAS, "gen.py")
failures = 0


def run(tree):
    files = [os.path.join(tree, "envelope.json")]
    for sub in ("defs", "events"):
        d = os.path.join(tree, sub)
        files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".json")]
    return run_files(tree, files)


def run_files(tree, files):
    out = os.path.join(tree, "out")
    os.makedirs(out, exist_ok=True)
    p = subprocess.run([sys.executable, GEN, "--out-h", os.path.join(out, "lh_types.h"),
                        "--out-c", os.path.join(out, "lh_types.c")] + files,
                       capture_output=True, text=True)
    return p.returncode, p.stderr, out


def fresh():
    tree = tempfile.mkdtemp(prefix="lh-gen-")
    shutil.copy(os.path.join(SCHEMAS, "envelope.json"), tree)
    shutil.copytree(os.path.join(SCHEMAS, "defs"), os.path.join(tree, "defs"))
    shutil.copytree(os.path.join(SCHEMAS, "events"), os.path.join(tree, "events"))
    return tree


def check(name, cond, detail=""):
    global failures
    if cond:
        print(f"ok {name}")
    else:
        failures += 1
        print(f"FAIL {name}: {detail}")


def event(props, required=(), extra=None):
    doc = {"$id": "x.y", "type": "object", "additionalProperties": False,
           "required": list(required), "properties": props}
    doc.update(extra or {})
    return doc


def bad(name, filename, doc, want, also=None):
    """Write doc (dict or raw text) as filename (and the also files) and expect gen.py to fail
    with a message naming the file and containing every string of want."""
    tree = fresh()
    try:
        for fn, d in (also or {}).items():
            with open(os.path.join(tree, fn), "w", encoding="utf-8") as fp:
                json.dump(d, fp)
        path = os.path.join(tree, filename)
        with open(path, "w", encoding="utf-8") as fp:
            fp.write(doc if isinstance(doc, str) else json.dumps(doc))
        rc, err, _ = run(tree)
        check(name, rc != 0 and all(w in err for w in want) and os.path.basename(filename) in err,
              f"rc={rc} stderr={err.strip()!r}, want {want}")
    finally:
        shutil.rmtree(tree)


# the real schemas generate, and the output names what consumers rely on
tree = fresh()
rc, err, out = run(tree)
check("real schemas generate", rc == 0, err)
if rc == 0:
    with open(os.path.join(out, "lh_types.h"), encoding="utf-8") as fp:
        h = fp.read()
    for needle in ("typedef struct lh_actor lh_actor_t;", "LH_EV__NONE = 0,", "LH_EV__COUNT",
                   "extern const lh_desc_t lh_attempt_succeeded_desc;",
                   "#define LH_TASK_SPEC_KIND_ACT \"act\"", "bool has_usage;",
                   "extern const lh_event_type_info_t lh_event_types[LH_EV__COUNT];"):
        check(f"header has {needle}", needle in h)
# a file present but not given to gen.py
files = [os.path.join(tree, "envelope.json")] + [
    os.path.join(tree, "defs", f) for f in sorted(os.listdir(os.path.join(tree, "defs")))]
files += [os.path.join(tree, "events", f) for f in sorted(os.listdir(os.path.join(tree, "events")))
          if f != "plan.failed.json"]
rc, err, _ = run_files(tree, files)
check("unlisted schema file", rc != 0 and "plan.failed.json" in err and "meson.build" in err, err)
shutil.rmtree(tree)

bad("pattern", "events/x.y.json",
    event({"a": {"type": "string", "pattern": "^a$"}}), ["properties.a", "\"pattern\""])
bad("type list", "events/x.y.json",
    event({"a": {"type": ["string", "null"]}}), ["properties.a", "type lists"])
bad("inline object", "events/x.y.json",
    event({"a": {"type": "object", "properties": {}}}), ["properties.a", "inline objects"])
bad("array of arrays", "events/x.y.json",
    event({"a": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}}),
    ["properties.a.items", "arrays of arrays"])
bad("array without items", "events/x.y.json",
    event({"a": {"type": "array"}}), ["properties.a", "items"])
bad("missing def", "events/x.y.json",
    event({"a": {"$ref": "nope"}}), ["properties.a", "defs/nope.json"])
bad("ref path", "events/x.y.json",
    event({"a": {"$ref": "#/defs/usage"}}), ["properties.a", "$ref"])
bad("enum on integer", "events/x.y.json",
    event({"a": {"type": "integer", "enum": [1, 2]}}), ["properties.a", "\"enum\""])
bad("const", "events/x.y.json",
    event({"a": {"type": "integer", "const": 1}}), ["properties.a", "\"const\""])
bad("keyword beside free-form JSON", "events/x.y.json",
    event({"a": {"properties": {}}}), ["properties.a", "\"properties\""])
bad("float bound on integer", "events/x.y.json",
    event({"a": {"type": "integer", "minimum": 0.5}}), ["properties.a", "minimum"])
bad("min above max", "events/x.y.json",
    event({"a": {"type": "integer", "minimum": 5, "maximum": 1}}), ["properties.a", "greater"])
bad("implicit additionalProperties", "events/x.y.json",
    {"$id": "x.y", "type": "object", "properties": {}}, ["additionalProperties"])
bad("id mismatch", "events/x.y.json",
    event({}, extra={"$id": "x.z"}), ["$id", "x.y"])
bad("required unknown", "events/x.y.json",
    event({"a": {"type": "string"}}, required=["b"]), ["required", "\"b\""])
bad("C keyword", "events/x.y.json",
    event({"int": {"type": "string"}}), ["properties.int", "C keywords"])
bad("has_ collision", "events/x.y.json",
    event({"usage": {"$ref": "usage"}, "has_usage": {"type": "boolean"}}),
    ["properties.has_usage", "presence flag"])
bad("C name collision", "defs/x_y.json",
    {"$id": "x_y", "type": "object", "additionalProperties": False, "properties": {}},
    ["lh_x_y_t"], also={"events/x.y.json": event({})})
bad("embedded cycle", "defs/loop_a.json",
    {"$id": "loop_a", "type": "object", "additionalProperties": False,
     "properties": {"me": {"$ref": "loop_a"}}}, ["cycle"])
bad("bad event name", "events/Plan.json", event({}, extra={"$id": "Plan"}), ["event file names"])
bad("duplicate JSON key", "events/x.y.json",
    '{"$id": "x.y", "$id": "x.y", "type": "object", "additionalProperties": false}',
    ["duplicate key"])
bad("not JSON", "events/x.y.json", "{nope", ["invalid JSON"])
bad("envelope changed", "envelope.json", {"properties": {"v": {}}}, ["envelope", "properties"])

print(f"{failures} failed")
sys.exit(1 if failures else 0)
