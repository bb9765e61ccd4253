//! The Goldfish real-time clock of QEMU's virt board (`google,goldfish-rtc` at 0x101000, interrupt 11):
//! nanoseconds since the Unix epoch from the host's clock (the guest may set its own offset), and an alarm
//! that raises the interrupt line when the clock reaches it.
//!
//! Registers (32-bit): 0x00 TIME_LOW (reading it latches TIME_HIGH; writing TIME_HIGH then TIME_LOW sets the
//! time), 0x04 TIME_HIGH, 0x08 ALARM_LOW (writing it arms the alarm at ALARM_HIGH:value), 0x0c ALARM_HIGH,
//! 0x10 IRQ_ENABLED, 0x14 CLEAR_ALARM, 0x18 ALARM_STATUS (1 while armed), 0x1c CLEAR_INTERRUPT.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::interrupt::IrqLine;
use crate::MmioDevice;

const TIME_LOW: u64 = 0x00;
const TIME_HIGH: u64 = 0x04;
const ALARM_LOW: u64 = 0x08;
const ALARM_HIGH: u64 = 0x0c;
const IRQ_ENABLED: u64 = 0x10;
const CLEAR_ALARM: u64 = 0x14;
const ALARM_STATUS: u64 = 0x18;
const CLEAR_INTERRUPT: u64 = 0x1c;

fn host_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[derive(Default)]
struct State {
    /// Guest time minus host time, in ns.
    offset: i128,
    latched_high: u32,
    written_high: u32,
    alarm_high: u32,
    /// Armed alarm, in guest ns.
    alarm: Option<u64>,
    irq_enabled: bool,
    pending: bool,
    /// The device is gone: the alarm thread ends.
    closed: bool,
}

impl State {
    fn now(&self) -> u64 {
        (host_ns() + self.offset).clamp(0, u64::MAX as i128) as u64
    }

    fn level(&self) -> bool {
        self.pending && self.irq_enabled
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    irq: Arc<dyn IrqLine>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn drive(&self, before: bool, after: bool) {
        if before != after {
            if let Err(e) = self.irq.set_level(after) {
                log::warn!("goldfish-rtc: interrupt line: {e}");
            }
        }
    }
}

/// The RTC device. An alarm thread (named `rtc-alarm`) waits for armed alarms.
pub struct GoldfishRtc {
    shared: Arc<Shared>,
}

impl GoldfishRtc {
    /// An RTC on interrupt line `irq`, reading the host's clock.
    pub fn new(irq: Arc<dyn IrqLine>) -> std::io::Result<GoldfishRtc> {
        Self::with_thread_hook(irq, Box::new(|| {}))
    }

    /// An RTC whose alarm thread runs `on_start` first.
    pub fn with_thread_hook(
        irq: Arc<dyn IrqLine>,
        on_start: crate::ThreadHook,
    ) -> std::io::Result<GoldfishRtc> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            irq,
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("rtc-alarm".into())
            .spawn(move || {
                on_start();
                alarm_thread(&thread_shared)
            })?;
        Ok(GoldfishRtc { shared })
    }
}

impl Drop for GoldfishRtc {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
    }
}

fn alarm_thread(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.closed {
            return;
        }
        match st.alarm {
            None => {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            Some(at) => {
                let now = st.now();
                if now >= at {
                    let before = st.level();
                    st.alarm = None;
                    st.pending = true;
                    let after = st.level();
                    shared.drive(before, after);
                } else {
                    let wait = Duration::from_nanos(at - now).min(Duration::from_secs(3600));
                    st = shared
                        .wake
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }
}

impl MmioDevice for GoldfishRtc {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let mut st = self.shared.lock();
        let value: u32 = match offset {
            TIME_LOW => {
                let now = st.now();
                st.latched_high = (now >> 32) as u32;
                now as u32
            }
            TIME_HIGH => st.latched_high,
            ALARM_LOW => st.alarm.map_or(0, |a| a as u32),
            ALARM_HIGH => st.alarm.map_or(st.alarm_high, |a| (a >> 32) as u32),
            IRQ_ENABLED => u32::from(st.irq_enabled),
            ALARM_STATUS => u32::from(st.alarm.is_some()),
            _ => 0,
        };
        let bytes = value.to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = bytes.get(i).copied().unwrap_or(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() != 4 {
            crate::log_limited!(
                log::Level::Debug,
                "goldfish-rtc: {}-byte write at {offset:#x} ignored",
                data.len()
            );
            return;
        }
        let value = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let shared = &self.shared;
        let mut st = shared.lock();
        let before = st.level();
        match offset {
            TIME_HIGH => st.written_high = value,
            TIME_LOW => {
                let want = (u64::from(st.written_high) << 32) | u64::from(value);
                st.offset = want as i128 - host_ns();
            }
            ALARM_HIGH => st.alarm_high = value,
            ALARM_LOW => {
                st.alarm = Some((u64::from(st.alarm_high) << 32) | u64::from(value));
                shared.wake.notify_all();
            }
            IRQ_ENABLED => st.irq_enabled = value & 1 != 0,
            CLEAR_ALARM => st.alarm = None,
            CLEAR_INTERRUPT => st.pending = false,
            _ => crate::log_limited!(
                log::Level::Debug,
                "goldfish-rtc: write {value:#x} at {offset:#x} ignored"
            ),
        }
        let after = st.level();
        shared.drive(before, after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interrupt::test_utils::RecordingLine;

    fn read32(rtc: &mut GoldfishRtc, off: u64) -> u32 {
        let mut b = [0u8; 4];
        rtc.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn time(rtc: &mut GoldfishRtc) -> u64 {
        let low = read32(rtc, TIME_LOW);
        (u64::from(read32(rtc, TIME_HIGH)) << 32) | u64::from(low)
    }

    #[test]
    fn reads_the_host_clock_and_advances() {
        let mut rtc = GoldfishRtc::new(Arc::new(RecordingLine::default())).unwrap();
        let host = host_ns() as u64;
        let t1 = time(&mut rtc);
        assert!(t1.abs_diff(host) < 5_000_000_000, "{t1} vs {host}");
        std::thread::sleep(Duration::from_millis(20));
        let t2 = time(&mut rtc);
        assert!(t2 >= t1 + 20_000_000, "{t1} -> {t2}");
    }

    #[test]
    fn the_guest_can_set_the_time() {
        let mut rtc = GoldfishRtc::new(Arc::new(RecordingLine::default())).unwrap();
        let want: u64 = 1_000_000_000 * 86_400; // 1970-01-02
        rtc.write(TIME_HIGH, &((want >> 32) as u32).to_le_bytes());
        rtc.write(TIME_LOW, &(want as u32).to_le_bytes());
        let t = time(&mut rtc);
        assert!(t >= want && t - want < 1_000_000_000, "{t}");
    }

    #[test]
    fn an_alarm_raises_the_line_until_cleared() {
        let line = Arc::new(RecordingLine::default());
        let mut rtc = GoldfishRtc::new(line.clone()).unwrap();
        rtc.write(IRQ_ENABLED, &1u32.to_le_bytes());
        let at = time(&mut rtc) + 30_000_000;
        rtc.write(ALARM_HIGH, &((at >> 32) as u32).to_le_bytes());
        rtc.write(ALARM_LOW, &(at as u32).to_le_bytes());
        assert_eq!(read32(&mut rtc, ALARM_STATUS), 1);
        let mut waited = 0;
        while line.levels().last() != Some(&true) && waited < 200 {
            std::thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
        assert_eq!(line.levels(), vec![true], "the alarm never fired");
        assert!(time(&mut rtc) >= at);
        assert_eq!(read32(&mut rtc, ALARM_STATUS), 0);
        rtc.write(CLEAR_INTERRUPT, &1u32.to_le_bytes());
        assert_eq!(line.levels(), vec![true, false]);
        // A cleared alarm never fires; odd-sized writes are ignored.
        let at = time(&mut rtc) + 20_000_000;
        rtc.write(ALARM_HIGH, &((at >> 32) as u32).to_le_bytes());
        rtc.write(ALARM_LOW, &(at as u32).to_le_bytes());
        rtc.write(CLEAR_ALARM, &1u32.to_le_bytes());
        rtc.write(IRQ_ENABLED, &[0, 0]);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(line.levels(), vec![true, false]);
    }
}
