"""Moving work between parts of Vigil: the event queue, the internal event stream, offsets."""
