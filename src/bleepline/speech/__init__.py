"""Speech on the call timeline: voice activity, the streaming recognizer and model resolution."""
