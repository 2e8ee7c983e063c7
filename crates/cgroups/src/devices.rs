//! Device access rules: normalisation of the OCI rules, their meaning
//! (evaluated without the kernel), the cgroup v1 file format and the
//! cgroup v2 eBPF program.
//!
//! Semantics: rules are evaluated last-match-wins on top of a default of
//! "deny". An allow rule matches a request whose access bits are all granted
//! by the rule; a deny rule matches a request that asks for any of the bits it
//! denies (so "deny w" refuses an `O_RDWR` open even after "allow rwm").

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

pub const ACCESS_MKNOD: u8 = 1;
pub const ACCESS_READ: u8 = 2;
pub const ACCESS_WRITE: u8 = 4;
pub const ACCESS_ALL: u8 = ACCESS_MKNOD | ACCESS_READ | ACCESS_WRITE;

/// Device kinds the device controller distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Block,
    Char,
}

impl DeviceKind {
    fn letter(self) -> char {
        match self {
            DeviceKind::Block => 'b',
            DeviceKind::Char => 'c',
        }
    }

    /// `BPF_DEVCG_DEV_BLOCK` / `BPF_DEVCG_DEV_CHAR` from linux/bpf.h.
    fn bpf_type(self) -> i32 {
        match self {
            DeviceKind::Block => 1,
            DeviceKind::Char => 2,
        }
    }
}

/// One normalised rule; `None` is a wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: Option<DeviceKind>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Bit set of `ACCESS_*`.
    pub access: u8,
}

/// One access attempt, as the kernel presents it to the device controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRequest {
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub access: u8,
}

impl DeviceRule {
    pub fn from_oci(rule: &LinuxDeviceCgroup) -> Result<DeviceRule> {
        let kind = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::B) => Some(DeviceKind::Block),
            // Unbuffered character devices are character devices to the kernel.
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DeviceKind::Char),
            Some(LinuxDeviceType::P) => {
                return Err(Error::InvalidArgument {
                    field: "linux.resources.devices.type",
                    reason: "fifos (\"p\") cannot be controlled by the device cgroup".into(),
                })
            }
        };
        let number = |n: Option<i64>, field: &'static str| -> Result<Option<u32>> {
            match n {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                // Device numbers are 12-bit majors and 20-bit minors; staying
                // below 2^31 also keeps them exact as BPF immediates.
                Some(n) => i32::try_from(n)
                    .map(|n| Some(n.unsigned_abs()))
                    .map_err(|_| Error::InvalidArgument {
                        field,
                        reason: format!("{n} is out of range"),
                    }),
            }
        };
        let access = match rule.access().as_deref() {
            None | Some("") => ACCESS_ALL,
            Some(s) => parse_access(s)?,
        };
        Ok(DeviceRule {
            allow: rule.allow(),
            kind,
            major: number(rule.major(), "linux.resources.devices.major")?,
            minor: number(rule.minor(), "linux.resources.devices.minor")?,
            access,
        })
    }

    fn matches(&self, req: &DeviceRequest) -> bool {
        if self.kind.is_some_and(|k| k != req.kind)
            || self.major.is_some_and(|m| m != req.major)
            || self.minor.is_some_and(|m| m != req.minor)
        {
            return false;
        }
        if self.allow {
            req.access & !self.access == 0
        } else {
            req.access & self.access != 0
        }
    }

    fn matches_everything(&self) -> bool {
        self.kind.is_none()
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ACCESS_ALL
    }

    /// The line for `devices.allow`/`devices.deny` (cgroup v1,
    /// Documentation/admin-guide/cgroup-v1/devices.rst).
    pub fn v1_line(&self) -> String {
        if self.matches_everything() {
            return "a".to_owned();
        }
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACCESS_READ, 'r'), (ACCESS_WRITE, 'w'), (ACCESS_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        format!(
            "{} {}:{} {}",
            self.kind.map_or('a', DeviceKind::letter),
            num(self.major),
            num(self.minor),
            access
        )
    }
}

fn parse_access(s: &str) -> Result<u8> {
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => ACCESS_READ,
            'w' => ACCESS_WRITE,
            'm' => ACCESS_MKNOD,
            _ => {
                return Err(Error::InvalidArgument {
                    field: "linux.resources.devices.access",
                    reason: format!("{s:?} may only contain r, w and m"),
                })
            }
        };
    }
    Ok(bits)
}

/// Whether `rules` let `req` through: the last matching rule decides, and
/// nothing matching means deny. The eBPF program implements exactly this.
pub fn evaluate(rules: &[DeviceRule], req: &DeviceRequest) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(req))
        .is_some_and(|r| r.allow)
}

/// Lines to write for cgroup v1, as `(file, line)` pairs in order.
///
/// The first line resets the cgroup to "deny everything" (`a` to
/// `devices.deny`), so the outcome matches [`evaluate`]'s default deny; then
/// each rule is written in order, which in v1 adds or removes exceptions and
/// therefore also ends up last-match-wins.
pub fn v1_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut out = vec![("devices.deny", "a".to_owned())];
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        out.push((file, r.v1_line()));
    }
    out
}

/// One eBPF instruction (struct bpf_insn in linux/bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8-byte kernel encoding (registers packed dst low, src high nibble).
    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.dst & 0x0f) | (self.src << 4);
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

// Opcodes (Documentation/bpf/standardization/instruction-set.rst).
pub(crate) const LDX_W: u8 = 0x61; // dst = *(u32 *)(src + off)
pub(crate) const MOV_K: u8 = 0xb7; // dst = imm (64-bit)
pub(crate) const MOV_X: u8 = 0xbf; // dst = src (64-bit)
pub(crate) const AND_K: u8 = 0x57; // dst &= imm
pub(crate) const RSH_K: u8 = 0x77; // dst >>= imm
pub(crate) const JEQ_K: u8 = 0x15; // if dst == imm goto pc + off
pub(crate) const JNE_K: u8 = 0x55; // if dst != imm goto pc + off
pub(crate) const EXIT: u8 = 0x95;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// Builds a `BPF_PROG_TYPE_CGROUP_DEVICE` program implementing [`evaluate`].
///
/// The context is `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
/// u32 minor; }` with `access_type = (access << 16) | type`. The program
/// loads type into r2, access into r3, major into r4 and minor into r5, then
/// tests the rules from last to first; the first that matches returns 1
/// (allow) or 0 (deny), and falling off the end returns 0.
pub fn bpf_program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut prog = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(LDX_W, 3, 1, 0, 0),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    for rule in rules.iter().rev() {
        let mut block = Vec::new();
        // Jumps are emitted with a placeholder offset and patched to the end
        // of the block once its length is known.
        let mut jumps = Vec::new();
        if let Some(k) = rule.kind {
            jumps.push(block.len());
            block.push(insn(JNE_K, 2, 0, 0, k.bpf_type()));
        }
        for (reg, n) in [(4, rule.major), (5, rule.minor)] {
            if let Some(n) = n {
                jumps.push(block.len());
                // from_oci keeps numbers below 2^31.
                block.push(insn(JNE_K, reg, 0, 0, n as i32));
            }
        }
        if rule.access != ACCESS_ALL {
            block.push(insn(MOV_X, 1, 3, 0, 0));
            if rule.allow {
                // Match when no requested bit falls outside the rule.
                block.push(insn(AND_K, 1, 0, 0, i32::from(!rule.access & ACCESS_ALL)));
                jumps.push(block.len());
                block.push(insn(JNE_K, 1, 0, 0, 0));
            } else {
                // Match when any requested bit is one the rule denies.
                block.push(insn(AND_K, 1, 0, 0, i32::from(rule.access)));
                jumps.push(block.len());
                block.push(insn(JEQ_K, 1, 0, 0, 0));
            }
        }
        block.push(insn(MOV_K, 0, 0, 0, i32::from(rule.allow)));
        block.push(insn(EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in jumps {
            // Offsets are relative to the next instruction; blocks are tiny.
            block[j].off = (len - j - 1) as i16;
        }
        let unconditional = rule.kind.is_none()
            && rule.major.is_none()
            && rule.minor.is_none()
            && (rule.access == ACCESS_ALL);
        prog.extend(block);
        if unconditional {
            // Nothing after an unconditional exit is reachable, and the
            // verifier rejects unreachable instructions.
            return prog;
        }
    }
    prog.push(insn(MOV_K, 0, 0, 0, 0));
    prog.push(insn(EXIT, 0, 0, 0, 0));
    prog
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the subset of eBPF that [`bpf_program`] emits.
    fn interpret(prog: &[Insn], req: &DeviceRequest) -> u64 {
        let ctx: [u32; 3] = [
            (u32::from(req.access) << 16) | req.kind.bpf_type() as u32,
            req.major,
            req.minor,
        ];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 10_000, "program does not terminate");
            let i = prog[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let imm = i.imm as i64 as u64;
            let mut next = pc + 1;
            let jump = (pc as i64 + 1 + i64::from(i.off)) as usize;
            match i.code {
                LDX_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[usize::try_from(i.off).expect("offset") / 4]);
                }
                MOV_K => r[d] = imm,
                MOV_X => r[d] = r[s],
                AND_K => r[d] &= imm,
                RSH_K => r[d] >>= imm,
                JEQ_K => {
                    if r[d] == imm {
                        next = jump
                    }
                }
                JNE_K => {
                    if r[d] != imm {
                        next = jump
                    }
                }
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
            pc = next;
        }
    }

    fn rule(
        allow: bool,
        kind: Option<DeviceKind>,
        major: Option<u32>,
        minor: Option<u32>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: parse_access(access).expect("access"),
        }
    }

    use DeviceKind::{Block, Char};

    fn all_requests() -> Vec<DeviceRequest> {
        let mut out = Vec::new();
        for kind in [Block, Char] {
            for (major, minor) in [(1, 3), (1, 5), (5, 0), (8, 0), (136, 2)] {
                for access in 1..=ACCESS_ALL {
                    out.push(DeviceRequest {
                        kind,
                        major,
                        minor,
                        access,
                    });
                }
            }
        }
        out
    }

    fn rule_sets() -> Vec<Vec<DeviceRule>> {
        vec![
            vec![],
            vec![rule(false, None, None, None, "rwm")],
            vec![rule(true, None, None, None, "rwm")],
            // The usual container default: deny all, then a list of allows.
            vec![
                rule(false, None, None, None, "rwm"),
                rule(true, Some(Char), Some(1), Some(3), "rwm"),
                rule(true, Some(Char), Some(1), Some(5), "rw"),
                rule(true, Some(Char), Some(136), None, "rwm"),
                rule(true, None, None, None, "m"),
            ],
            // Deny after allow-all, partial access.
            vec![
                rule(true, None, None, None, "rwm"),
                rule(false, Some(Char), Some(1), Some(3), "w"),
                rule(false, Some(Block), None, None, "m"),
            ],
            // An allow-all in the middle hides nothing that comes after it.
            vec![
                rule(false, Some(Char), Some(1), None, "rwm"),
                rule(true, None, None, None, "rwm"),
                rule(false, Some(Char), Some(1), Some(5), "r"),
            ],
            vec![
                rule(true, Some(Block), Some(8), None, "r"),
                rule(true, Some(Block), None, Some(0), "w"),
            ],
        ]
    }

    #[test]
    fn evaluation_order() {
        let dev_null_read = DeviceRequest {
            kind: Char,
            major: 1,
            minor: 3,
            access: ACCESS_READ,
        };
        let rw = DeviceRequest {
            access: ACCESS_READ | ACCESS_WRITE,
            ..dev_null_read
        };
        // Default deny.
        assert!(!evaluate(&[], &dev_null_read));
        // Last match wins, in both directions.
        let deny_all = rule(false, None, None, None, "rwm");
        let allow_null = rule(true, Some(Char), Some(1), Some(3), "rwm");
        assert!(evaluate(&[deny_all, allow_null], &dev_null_read));
        assert!(!evaluate(&[allow_null, deny_all], &dev_null_read));
        // Allow needs every requested bit.
        let allow_r = rule(true, Some(Char), Some(1), Some(3), "r");
        assert!(evaluate(&[allow_r], &dev_null_read));
        assert!(!evaluate(&[allow_r], &rw));
        // Deny hits if any requested bit is denied.
        let deny_w = rule(false, Some(Char), Some(1), Some(3), "w");
        let allow_all = rule(true, None, None, None, "rwm");
        assert!(!evaluate(&[allow_all, deny_w], &rw));
        assert!(evaluate(&[allow_all, deny_w], &dev_null_read));
        // Type and number wildcards.
        let allow_char_1 = rule(true, Some(Char), Some(1), None, "rwm");
        assert!(evaluate(&[allow_char_1], &rw));
        assert!(!evaluate(
            &[allow_char_1],
            &DeviceRequest { kind: Block, ..rw }
        ));
    }

    #[test]
    fn bpf_program_agrees_with_evaluate() {
        for rules in rule_sets() {
            let prog = bpf_program(&rules);
            for req in all_requests() {
                assert_eq!(
                    interpret(&prog, &req) == 1,
                    evaluate(&rules, &req),
                    "rules {rules:?} request {req:?}"
                );
            }
        }
    }

    #[test]
    fn bpf_program_has_no_unreachable_code() {
        // The kernel verifier rejects unreachable instructions; after an
        // unconditional rule the program must end.
        let prog = bpf_program(&[
            rule(false, Some(Char), Some(1), None, "rwm"),
            rule(true, None, None, None, "rwm"),
        ]);
        assert_eq!(prog.len(), 6 + 2);
        assert_eq!(prog.last().map(|i| i.code), Some(EXIT));
        let prog = bpf_program(&[]);
        assert_eq!(prog.len(), 6 + 2);
    }

    #[test]
    fn v1_lines() {
        let rules = [
            rule(false, None, None, None, "rwm"),
            rule(true, Some(Char), Some(1), Some(3), "rwm"),
            rule(true, Some(Char), Some(136), None, "rw"),
            rule(true, None, None, None, "m"),
            rule(false, Some(Block), Some(8), Some(0), "w"),
        ];
        assert_eq!(
            v1_writes(&rules),
            [
                ("devices.deny", "a".to_owned()),
                ("devices.deny", "a".to_owned()),
                ("devices.allow", "c 1:3 rwm".to_owned()),
                ("devices.allow", "c 136:* rw".to_owned()),
                ("devices.allow", "a *:* m".to_owned()),
                ("devices.deny", "b 8:0 w".to_owned()),
            ]
        );
    }

    #[test]
    fn from_oci_rules() {
        let parse = |v: serde_json::Value| {
            let r: LinuxDeviceCgroup = serde_json::from_value(v).expect("json");
            DeviceRule::from_oci(&r)
        };
        assert_eq!(
            parse(serde_json::json!({"allow": false, "access": "rwm"})).expect("rule"),
            rule(false, None, None, None, "rwm")
        );
        assert_eq!(
            parse(serde_json::json!({"allow": true, "type": "u", "major": 1, "minor": -1}))
                .expect("rule"),
            rule(true, Some(Char), Some(1), None, "rwm")
        );
        assert!(parse(serde_json::json!({"allow": true, "type": "p"})).is_err());
        assert!(parse(serde_json::json!({"allow": true, "access": "rx"})).is_err());
        assert!(parse(serde_json::json!({"allow": true, "major": 1i64 << 40})).is_err());
    }
}
