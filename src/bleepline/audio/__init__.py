"""Audio on the call timeline: files, resampling, G.711 and tones. Knows nothing of speech or networks."""
