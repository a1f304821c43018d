"""The kube emulator (../shared/tools/kube-emulator.py) for the benchmark, with two shortcuts that
keep its answers the same but make a request cost O(1) instead of O(everything so far):

- kmock matches each request against its reactions by scanning every request it ever received (it
  keeps them all for test assertions): here it scans the requests in flight (the emulator's
  reactions do not count requests), and keeps only the last few hundred;
- kmock finds the object a request names by scanning every object: here it is looked up by its key
  first (the scan still runs when the key does not find it).

Without them a request costs tens of milliseconds once a thousand grants, their events and their
requests are in, and 10,000 grants take hours. Usage: python kube_emulator.py [PORT], as
kube-emulator.py (XACCT_KUBE_EMULATOR overrides its path).
"""
import os
import runpy
import sys

from kmock._internal import apps, dsl, k8s

KEEP = 256
IN_FLIGHT = {}  # id(handler) -> the requests being handled

_handle = apps.RawHandler._handle
_root_iter = dsl.Root.__iter__


async def handle_in_flight(self, request):
    if len(self._requests) > 2 * KEEP:
        del self._requests[:-KEEP]
        for payload in self._payloads:
            if isinstance(getattr(payload, "_requests", None), list):
                del payload._requests[:-KEEP]
    in_flight = IN_FLIGHT.setdefault(id(self), [])
    in_flight.append(request)
    try:
        return await _handle(self, request)
    finally:
        in_flight.remove(request)


def requests_in_flight(self):
    if id(self) in IN_FLIGHT:
        yield from list(IN_FLIGHT[id(self)])
    else:
        yield from _root_iter(self)


apps.RawHandler._handle = handle_in_flight
dsl.Root.__iter__ = requests_in_flight

_get_objs = k8s.KubernetesEmulator._KubernetesEmulator__get_objs
_check = k8s.KubernetesEmulator._KubernetesEmulator__check


def get_objs_by_key(self, request, strict):
    if request.name is not None:
        key = (request.resource, request.namespace, request.name)
        obj = self._objects._objects.get(key)
        if obj is not None and _check(self, request, *key, strict=strict):
            return [obj]
    return _get_objs(self, request, strict)


k8s.KubernetesEmulator._KubernetesEmulator__get_objs = get_objs_by_key

here = os.path.dirname(os.path.abspath(__file__))
script = os.environ.get("XACCT_KUBE_EMULATOR") or os.path.join(here, "../../shared/tools/kube-emulator.py")
sys.argv = [script] + sys.argv[1:]
runpy.run_path(script, run_name="__main__")
