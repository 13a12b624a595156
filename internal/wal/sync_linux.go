package wal

import (
	"os"
	"syscall"
)

// datasync makes f's data durable, with only the metadata needed to read it back (its size when it grew):
// fdatasync(2). In a zero-filled segment a record overwrites allocated blocks, so the filesystem has no journal
// transaction to commit for it, and an append under FsyncAlways does not wait for the journal's periodic commit.
// A file already closed returns os.ErrClosed, as File.Sync does.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if cerr := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); cerr != nil {
		return os.ErrClosed // Control fails only when the file is closed
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
