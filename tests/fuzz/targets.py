"""The fuzz targets, by name: a Hypothesis test in tests/fuzz.

``make test`` runs them as ordinary tests (profile ``ci``); ``make fuzz`` runs
them with the ``long`` profile and then each under Atheris (atheris_run.py).
To add a target: write a module here with a ``@budget(n) @given(...)`` test that
calls ``tried(<name>)``, and add a line below.
"""

from __future__ import annotations

__all__ = ["TARGETS"]

#: name -> (module in tests/fuzz, test function)
TARGETS: dict[str, tuple[str, str]] = {
    "json_codec.decode": ("test_fuzz_json_codec", "test_decode_raises_only_malformed_payload"),
    "json_codec.round_trip": ("test_fuzz_json_codec", "test_encode_then_decode_round_trips"),
    "path_template.parse": ("test_fuzz_path_templates", "test_parse_raises_only_path_template_error"),
    "path_template.render": ("test_fuzz_path_templates", "test_rendered_path_stays_under_the_literal_prefix"),
    "request_binding.bind": (
        "test_fuzz_request_binding",
        "test_binding_raises_only_binding_error_and_keeps_the_invariants",
    ),
    "page_tokens.verify_text": ("test_fuzz_page_tokens", "test_any_text_is_refused_with_binding_error"),
    "page_tokens.mutate": (
        "test_fuzz_page_tokens",
        "test_signed_payloads_round_trip_and_any_change_is_refused",
    ),
    "page_tokens.position": ("test_fuzz_page_tokens", "test_positions_from_any_token_stay_within_the_limits"),
    "pagination.answer": (
        "test_fuzz_paged_answers",
        "test_a_page_decodes_or_is_malformed_and_its_next_token_is_accepted_back",
    ),
    "status.mapping": ("test_fuzz_status_mapping", "test_the_status_is_always_built_and_delays_are_clamped"),
    "events.encoder": (
        "test_fuzz_event_inputs",
        "test_encoder_raises_only_unroutable_and_its_records_parse_back",
    ),
    "events.websocket_frame": ("test_fuzz_event_inputs", "test_frame_parsing_never_raises"),
    "events.webhook_verify": ("test_fuzz_event_inputs", "test_webhook_verification_raises_only_rejections"),
    "events.webhook_auth": (
        "test_fuzz_event_inputs",
        "test_base64_signatures_and_tokens_raise_only_rejections",
    ),
    "events.redaction": ("test_fuzz_event_inputs", "test_redaction_never_lets_a_secret_through"),
    "graphql.variables": (
        "test_fuzz_graphql",
        "test_binding_raises_only_binding_error_and_sends_only_declared_variables",
    ),
    "graphql.answer": ("test_fuzz_graphql", "test_any_answer_is_read_and_mapped_without_raising"),
    "events.subscribe_record": (
        "test_fuzz_subscribe",
        "test_any_record_becomes_an_event_and_nothing_escapes",
    ),
    "events.subscribe_position": (
        "test_fuzz_subscribe",
        "test_any_position_is_refused_with_value_error_or_within_kafka_ranges",
    ),
    "server.wire_diagnosis": (
        "test_fuzz_wire_diagnosis",
        "test_the_diagnosis_never_raises_and_never_blames_a_valid_request",
    ),
    "security.bearer": (
        "test_fuzz_credentials",
        "test_any_bearer_token_is_refused_with_authentication_failed_unless_our_issuer_signed_it",
    ),
    "auth.token_answer": (
        "test_fuzz_credentials",
        "test_any_token_answer_is_a_sane_grant_or_a_credential_error",
    ),
    "h1.answer": (
        "test_fuzz_h1_answers",
        "test_any_answer_ends_as_an_answer_within_the_cap_or_an_upstream_error",
    ),
    "server.envoy_front_request": (
        "test_fuzz_envoy_front",
        "test_any_request_gets_one_answer_and_the_handler_only_whole_messages",
    ),
    "security.forwarded_certificate": (
        "test_fuzz_envoy_front",
        "test_any_forwarded_header_gives_no_certificate_or_one_pem",
    ),
}
