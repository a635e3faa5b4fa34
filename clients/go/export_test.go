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
