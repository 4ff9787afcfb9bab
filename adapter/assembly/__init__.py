"""The composition root: the protos read once (:mod:`.catalog`), credentials and
caller stacks built once per upstream (:mod:`.callers`), a transcoder and a handler
per method (:mod:`.rpc`), the event pipeline (:mod:`.event_parts`) and what stands
in front of the handlers (:mod:`.server_parts`). :class:`adapter.runtime.MeshAdapter`
runs the result as one lifecycle group."""
