//! The `sifive,test0` finisher of QEMU's virt board: bare-metal guests write 0x5555 to power off, 0x7777 to
//! reset, and `(code << 16) | 0x3333` to report a failure. Linux uses it through syscon-poweroff/reboot.

use crate::MmioDevice;

/// What the guest asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinisherRequest {
    /// 0x5555: power off, success.
    Pass,
    /// 0x3333 with a 16-bit code: power off, failure.
    Fail(u16),
    /// 0x7777: reset.
    Reset,
}

const FINISHER_FAIL: u32 = 0x3333;
const FINISHER_PASS: u32 = 0x5555;
const FINISHER_RESET: u32 = 0x7777;

/// The finisher device; `on_request` is called for each recognised write.
pub struct SifiveTest {
    on_request: Box<dyn Fn(FinisherRequest) + Send>,
}

impl SifiveTest {
    /// A finisher that reports requests to `on_request`.
    pub fn new(on_request: Box<dyn Fn(FinisherRequest) + Send>) -> SifiveTest {
        SifiveTest { on_request }
    }
}

impl MmioDevice for SifiveTest {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset != 0 || data.len() < 4 {
            crate::log_limited!(
                log::Level::Debug,
                "sifive_test: ignored {}-byte write at {offset:#x}",
                data.len()
            );
            return;
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let req = match v & 0xffff {
            FINISHER_PASS => FinisherRequest::Pass,
            FINISHER_RESET => FinisherRequest::Reset,
            FINISHER_FAIL => FinisherRequest::Fail((v >> 16) as u16),
            _ => {
                crate::log_limited!(log::Level::Warn, "sifive_test: unknown command {v:#x}");
                return;
            }
        };
        (self.on_request)(req);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn decodes_commands() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut dev = SifiveTest::new(Box::new(move |r| s2.lock().unwrap().push(r)));
        dev.write(0, &0x5555u32.to_le_bytes());
        dev.write(0, &((7u32 << 16) | 0x3333).to_le_bytes());
        dev.write(0, &0x7777u32.to_le_bytes());
        dev.write(0, &0x1234u32.to_le_bytes()); // unknown
        dev.write(4, &0x5555u32.to_le_bytes()); // wrong offset
        dev.write(0, &[0x55, 0x55]); // too short
        assert_eq!(
            *seen.lock().unwrap(),
            vec![
                FinisherRequest::Pass,
                FinisherRequest::Fail(7),
                FinisherRequest::Reset
            ]
        );
    }
}
