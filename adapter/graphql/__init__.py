"""RPCs bound to a GraphQL operation (``(meshadapter.options.v1.graphql)``) instead of a
REST call.

Layout, in the order a call passes through it:

- ``operation``: the option read and checked at start-up (:class:`GraphQLBinding`);
- ``variables``: request message -> the operation's ``variables``;
- ``transcoder``: the ``POST /graphql`` request and the response message from ``data``;
- ``answer``: reading ``{"data", "errors"}``;
- ``handler``: the RPC handler (persisted-query registration, partial answers);
- ``errors`` and ``status``: the failure and its gRPC status (the GraphQL error table).

Nothing is re-exported here: :mod:`adapter.descriptors.method_spec` imports
``operation`` while this package loads, and ``handler`` imports the descriptors back.
"""
