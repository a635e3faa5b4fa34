package dedup

// StreamInUse reports whether c carries its calls over an open stream (for tests).
func StreamInUse(c *Client) bool {
	if c.stream == nil || c.stream.unimplemented.Load() {
		return false
	}
	c.stream.mu.Lock()
	sess := c.stream.current
	c.stream.mu.Unlock()
	return sess != nil && !sess.isBroken()
}

// HoldStream keeps c's stream from sending until release is called, so that
// the calls made meanwhile are pending together when it frames them (for tests).
func HoldStream(c *Client) (release func()) {
	hold := make(chan struct{})
	c.stream.hold.Store(&hold)
	return func() {
		c.stream.hold.Store(nil)
		close(hold)
	}
}

// QueuedOnStream is how many calls wait to be framed on c's stream (for tests).
func QueuedOnStream(c *Client) int { return c.stream.queued() }
