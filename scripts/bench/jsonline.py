#!/usr/bin/env python3
"""jsonline.py KEY=VALUE...: prints one JSON object; values that parse as JSON (numbers, lists,
objects, true/false) stay typed, everything else is a string."""
import json
import sys

out = {}
for arg in sys.argv[1:]:
    key, _, value = arg.partition("=")
    try:
        out[key] = json.loads(value)
    except ValueError:
        out[key] = value
print(json.dumps(out))
