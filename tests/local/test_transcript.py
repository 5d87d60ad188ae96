from crossroads.local.transcript import DEFAULT_PREAMBLE, STOPS, transcript_prompt


def test_turns_become_a_transcript_ending_with_the_assistant_cue() -> None:
    prompt, stops = transcript_prompt(
        [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
        ]
    )
    assert (
        prompt == "Be terse.\n\nUser: Hi\nAssistant: Hello.\nUser: Capital of France?\nAssistant:"
    )
    assert stops == STOPS and "\nUser:" in stops


def test_without_a_system_message_a_neutral_preamble_is_used() -> None:
    prompt, _ = transcript_prompt([{"role": "user", "content": "Hi"}])
    assert prompt.startswith(DEFAULT_PREAMBLE + "\n\nUser: Hi")


def test_non_text_parts_are_dropped() -> None:
    prompt, _ = transcript_prompt(
        [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    )
    assert "image" not in prompt and prompt.endswith("Assistant:")
