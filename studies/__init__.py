"""Studies: experiments built on the core library (`steer_trace`); each package defines `STUDY`."""
