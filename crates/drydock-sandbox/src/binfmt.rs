//! Foreign architectures: which machine a program is built for, whether this host runs it
//! natively, and whether a binfmt_misc handler (qemu-user) is registered for it.

use std::path::Path;

/// What an ELF header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    pub class64: bool,
    pub little_endian: bool,
    pub machine: u16,
}

pub const EM_386: u16 = 3;
pub const EM_X86_64: u16 = 62;
pub const EM_ARM: u16 = 40;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_S390: u16 = 22;
pub const EM_PPC64: u16 = 21;
pub const EM_MIPS: u16 = 8;

/// Parses the first bytes of a file as an ELF header.
pub fn elf_info(header: &[u8]) -> Option<ElfInfo> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return None;
    }
    let class64 = match header[4] {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little_endian = match header[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let m = [header[18], header[19]];
    let machine = if little_endian {
        u16::from_le_bytes(m)
    } else {
        u16::from_be_bytes(m)
    };
    Some(ElfInfo {
        class64,
        little_endian,
        machine,
    })
}

/// The interpreter of a `#!` script.
pub fn shebang_interpreter(header: &[u8]) -> Option<String> {
    let rest = header.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    line.split_whitespace().next().map(str::to_string)
}

/// The ELF machines this build's host architecture executes without emulation.
pub fn native_machines() -> &'static [u16] {
    #[cfg(target_arch = "x86_64")]
    {
        &[EM_X86_64, EM_386]
    }
    #[cfg(target_arch = "aarch64")]
    {
        &[EM_AARCH64, EM_ARM]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        &[]
    }
}

/// The qemu/Debian name of an architecture.
pub fn arch_name(info: &ElfInfo) -> String {
    match (info.machine, info.class64, info.little_endian) {
        (EM_386, _, _) => "i386".into(),
        (EM_X86_64, _, _) => "x86_64".into(),
        (EM_ARM, _, true) => "arm".into(),
        (EM_ARM, _, false) => "armeb".into(),
        (EM_AARCH64, _, true) => "aarch64".into(),
        (EM_AARCH64, _, false) => "aarch64_be".into(),
        (EM_RISCV, true, _) => "riscv64".into(),
        (EM_RISCV, false, _) => "riscv32".into(),
        (EM_S390, _, _) => "s390x".into(),
        (EM_PPC64, _, true) => "ppc64le".into(),
        (EM_PPC64, _, false) => "ppc64".into(),
        (EM_MIPS, true, true) => "mips64el".into(),
        (EM_MIPS, true, false) => "mips64".into(),
        (EM_MIPS, false, true) => "mipsel".into(),
        (EM_MIPS, false, false) => "mips".into(),
        (m, _, _) => format!("ELF machine {m}"),
    }
}

/// One registered binfmt_misc handler (a file in `/proc/sys/fs/binfmt_misc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub enabled: bool,
    pub interpreter: String,
    pub flags: String,
    pub offset: usize,
    pub magic: Vec<u8>,
    pub mask: Vec<u8>,
}

/// Parses a handler file; extension-based handlers (no `magic` line) give `None`.
pub fn parse_handler(name: &str, text: &str) -> Option<Handler> {
    let mut h = Handler {
        name: name.to_string(),
        enabled: false,
        interpreter: String::new(),
        flags: String::new(),
        offset: 0,
        magic: Vec::new(),
        mask: Vec::new(),
    };
    for line in text.lines() {
        let line = line.trim();
        if line == "enabled" {
            h.enabled = true;
        } else if let Some(v) = line.strip_prefix("interpreter ") {
            h.interpreter = v.to_string();
        } else if let Some(v) = line.strip_prefix("flags:") {
            h.flags = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("offset ") {
            h.offset = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("magic ") {
            h.magic = hex(v)?;
        } else if let Some(v) = line.strip_prefix("mask ") {
            h.mask = hex(v)?;
        }
    }
    (!h.magic.is_empty()).then_some(h)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

impl Handler {
    /// Whether this handler would run a file starting with `header`.
    pub fn matches(&self, header: &[u8]) -> bool {
        self.enabled
            && self.magic.iter().enumerate().all(|(i, &m)| {
                let mask = self.mask.get(i).copied().unwrap_or(0xff);
                header
                    .get(self.offset + i)
                    .is_some_and(|&b| b & mask == m & mask)
            })
    }
}

/// Decides whether a program with this header can run here. `Ok(None)`: natively (or not an
/// ELF file); `Ok(Some(handler))`: through that handler; `Err`: the message to show.
pub fn check<'a>(
    program: &str,
    header: &[u8],
    handlers: &'a [Handler],
    binfmt_mounted: bool,
) -> Result<Option<&'a Handler>, String> {
    let Some(info) = elf_info(header) else {
        return Ok(None);
    };
    if native_machines().contains(&info.machine) {
        return Ok(None);
    }
    if let Some(h) = handlers.iter().find(|h| h.matches(header)) {
        return Ok(Some(h));
    }
    let arch = arch_name(&info);
    let mut msg = format!(
        "{program} is a {arch} binary and this host runs {host} natively, and no binfmt_misc handler for {arch} is registered",
        host = std::env::consts::ARCH,
    );
    if binfmt_mounted {
        msg.push_str(" in /proc/sys/fs/binfmt_misc");
    } else {
        msg.push_str(" (binfmt_misc is not even mounted: `mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc`)");
    }
    msg.push_str(&format!(
        "; install qemu-user-static and binfmt-support (`apt-get install qemu-user-static binfmt-support`), which registers `qemu-{arch}` with the F (fix-binary) flag, or register it by hand with `update-binfmts --enable qemu-{arch}`"
    ));
    Err(msg)
}

/// Reads the handlers registered on this host.
pub fn host_handlers(dir: &Path) -> (Vec<Handler>, bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut mounted = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            mounted = true;
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(e.path())
            && let Some(h) = parse_handler(&name, &text)
        {
            out.push(h);
        }
    }
    (out, mounted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16, class: u8, data: u8) -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        h[16] = 2; // ET_EXEC
        let m = if data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        h[18..20].copy_from_slice(&m);
        h
    }

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn elf_headers() {
        let i = elf_info(&elf(EM_AARCH64, 2, 1)).unwrap();
        assert_eq!(
            (i.machine, i.class64, i.little_endian),
            (EM_AARCH64, true, true)
        );
        assert_eq!(arch_name(&i), "aarch64");
        assert_eq!(arch_name(&elf_info(&elf(EM_PPC64, 2, 2)).unwrap()), "ppc64");
        assert_eq!(elf_info(b"#!/bin/sh\n"), None);
        assert_eq!(
            shebang_interpreter(b"#! /bin/busybox sh\necho"),
            Some("/bin/busybox".into())
        );
    }

    #[test]
    fn handler_matching_uses_mask() {
        let h = parse_handler("qemu-aarch64", QEMU_AARCH64).unwrap();
        assert!(h.enabled && h.flags.contains('F'));
        assert!(h.matches(&elf(EM_AARCH64, 2, 1)));
        let mut shared_object = elf(EM_AARCH64, 2, 1);
        shared_object[16] = 3; // ET_DYN: masked with fe
        assert!(h.matches(&shared_object));
        assert!(!h.matches(&elf(EM_RISCV, 2, 1)));
        let disabled =
            parse_handler("x", &QEMU_AARCH64.replace("enabled\n", "disabled\n")).unwrap();
        assert!(!disabled.matches(&elf(EM_AARCH64, 2, 1)));
    }

    #[test]
    fn check_names_the_missing_handler() {
        let h = parse_handler("qemu-aarch64", QEMU_AARCH64).unwrap();
        let handlers = [h];
        assert_eq!(
            check("/bin/sh", &elf(EM_X86_64, 2, 1), &handlers, true).unwrap(),
            None
        );
        assert!(
            check("/bin/sh", &elf(EM_AARCH64, 2, 1), &handlers, true)
                .unwrap()
                .is_some()
        );
        let err = check("/bin/sh", &elf(EM_RISCV, 2, 1), &handlers, true).unwrap_err();
        assert!(
            err.contains("riscv64")
                && err.contains("qemu-user-static")
                && err.contains("qemu-riscv64"),
            "{err}"
        );
        let err = check("/bin/sh", &elf(EM_S390, 2, 2), &[], false).unwrap_err();
        assert!(err.contains("not even mounted"), "{err}");
    }
}
