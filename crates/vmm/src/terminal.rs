//! rvvmm's stdin as the guest console: raw mode while a terminal is attached (restored on drop), and the
//! escape sequence Ctrl-A x that stops the VM from the keyboard (Ctrl-A Ctrl-A sends one Ctrl-A).

use std::io;

/// The escape key, Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// True when fd 0 is a terminal.
pub fn stdin_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// Puts the terminal on stdin in raw mode; restores the saved settings when dropped.
pub struct RawTerminal {
    saved: libc::termios,
}

impl RawTerminal {
    /// Switches stdin to raw mode if it is a terminal; `None` when it is not.
    pub fn enable() -> io::Result<Option<RawTerminal>> {
        if !stdin_is_tty() {
            return Ok(None);
        }
        // SAFETY: an all-zero termios is a valid output buffer for tcgetattr.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is a terminal and `saved` is writable.
        if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only modifies the struct it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `raw` is a valid termios derived from the current settings.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(RawTerminal { saved }))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enable` on the same descriptor.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

/// What a chunk of keyboard input means.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// Bytes for the guest.
    pub forward: Vec<u8>,
    /// The user asked to stop the VM.
    pub quit: bool,
}

/// Recognises Ctrl-A x across reads.
#[derive(Debug, Default)]
pub struct EscapeParser {
    pending_escape: bool,
}

impl EscapeParser {
    /// Feeds input bytes.
    pub fn feed(&mut self, input: &[u8]) -> Keys {
        let mut keys = Keys::default();
        for &b in input {
            if self.pending_escape {
                self.pending_escape = false;
                match b {
                    b'x' | b'X' => {
                        keys.quit = true;
                        return keys;
                    }
                    ESCAPE => keys.forward.push(ESCAPE),
                    other => keys.forward.extend_from_slice(&[ESCAPE, other]),
                }
            } else if b == ESCAPE {
                self.pending_escape = true;
            } else {
                keys.forward.push(b);
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences() {
        let mut p = EscapeParser::default();
        assert_eq!(p.feed(b"ls\r").forward, b"ls\r");
        let k = p.feed(b"a\x01");
        assert_eq!((k.forward.as_slice(), k.quit), (&b"a"[..], false));
        assert!(p.feed(b"x").quit, "escape split across reads");
        assert_eq!(p.feed(b"\x01\x01").forward, vec![ESCAPE]);
        assert_eq!(p.feed(b"\x01b").forward, vec![ESCAPE, b'b']);
        assert!(p.feed(b"q\x01xrest").quit);
    }
}
