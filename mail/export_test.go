package mail

import "time"

// SetClock lets a test move a Dir's clock, so a re-send lands in another second.
func SetClock(d *Dir, now func() time.Time) { d.now = now }
