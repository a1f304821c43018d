"""Runs Argo CD resource health scripts as Argo CD does: Lua 5.1 (lupa's lua51; Argo CD embeds
gopher-lua, a Lua 5.1), a fresh interpreter per object, the object as the global `obj` (maps as
tables, lists as tables from 1, JSON null as nil), and the table the script returns as the health,
whose `status` must be one Argo CD knows.

stdin: a JSON list of {"script": PATH, "object": {...}}; stdout: a JSON list of
{"status": ..., "message": ...}, in the same order. Used by tests/argocd_health.rs.
"""
import json
import sys

from lupa import lua51

STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing"}


def to_lua(lua, value):
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value if v is not None])
    return value


def health(script, obj):
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    assert lua.eval("_VERSION") == "Lua 5.1", lua.eval("_VERSION")
    lua.globals().obj = to_lua(lua, obj)
    hs = lua.execute(script)
    if lua.eval("type")(hs) != "table":
        raise SystemExit(f"the script returned {hs!r}, not a table")
    status, message = hs["status"], hs["message"]
    if status not in STATUSES:
        raise SystemExit(f"the script returned the status {status!r}, which Argo CD does not know")
    if not isinstance(message, str):
        raise SystemExit(f"the script returned the message {message!r}, not a string")
    return {"status": status, "message": message}


def main():
    cases = json.load(sys.stdin)
    scripts = {}
    out = []
    for case in cases:
        path = case["script"]
        if path not in scripts:
            with open(path, encoding="utf-8") as f:
                scripts[path] = f.read()
        out.append(health(scripts[path], case["object"]))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
