//! Tests: a classic BPF interpreter runs compiled programs against a direct
//! model of the profile semantics; a few tests install filters for real in a
//! forked child.

use super::*;
use bpf::{
    BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_RET,
    BPF_W,
};

const BPF_JSET: u16 = 0x40;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL_THREAD: u32 = libc::SECCOMP_RET_KILL_THREAD;
const KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const fn errno(e: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e
}

/// `struct seccomp_data` as the kernel fills it.
#[derive(Clone, Copy, Debug)]
struct Data {
    nr: u32,
    arch: u32,
    args: [u64; 6],
}

impl Data {
    fn new(arch: u32, nr: u32) -> Data {
        Data {
            nr,
            arch,
            args: [0; 6],
        }
    }

    fn arg(mut self, i: usize, v: u64) -> Data {
        self.args[i] = v;
        self
    }

    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..4].copy_from_slice(&self.nr.to_ne_bytes());
        b[4..8].copy_from_slice(&self.arch.to_ne_bytes());
        // instruction_pointer stays 0.
        for (i, a) in self.args.iter().enumerate() {
            b[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        b
    }
}

/// Checks what the kernel's classic BPF and seccomp verifiers check
/// (bpf_check_classic, seccomp_check_filter) for the subset we emit.
fn verify(prog: &[Insn]) {
    assert!(
        !prog.is_empty() && prog.len() <= BPF_MAXINSNS,
        "length {}",
        prog.len()
    );
    assert_eq!(
        prog[prog.len() - 1].code,
        BPF_RET | BPF_K,
        "must end in RET"
    );
    for (pc, insn) in prog.iter().enumerate() {
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                assert!(insn.k % 4 == 0 && insn.k < 64, "bad load at {pc}: {insn:?}")
            }
            c if c == BPF_ALU | BPF_AND | BPF_K || c == BPF_RET | BPF_K => {}
            c if c == BPF_JMP | BPF_JA => {
                assert!(pc + 1 + (insn.k as usize) < prog.len(), "JA out at {pc}")
            }
            c if c & 0x07 == BPF_JMP
                && [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET].contains(&(c & 0xf8)) =>
            {
                let far = pc + 1 + usize::from(insn.jt.max(insn.jf));
                assert!(far < prog.len(), "jump out at {pc}");
            }
            _ => panic!("unexpected instruction at {pc}: {insn:?}"),
        }
    }
}

/// Runs a program the way the kernel does and returns its action.
fn run(prog: &[Insn], data: &Data) -> u32 {
    let bytes = data.bytes();
    let mut a: u32 = 0;
    let mut pc = 0usize;
    loop {
        let insn = prog[pc];
        pc += 1;
        let k = insn.k;
        let cond = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
        match insn.code {
            c if c == BPF_LD | BPF_W | BPF_ABS => {
                let o = k as usize;
                a = u32::from_ne_bytes(bytes[o..o + 4].try_into().expect("4 bytes"));
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => a &= k,
            c if c == BPF_RET | BPF_K => return k,
            c if c == BPF_JMP | BPF_JA => pc += k as usize,
            c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += cond(a == k),
            c if c == BPF_JMP | BPF_JGT | BPF_K => pc += cond(a > k),
            c if c == BPF_JMP | BPF_JGE | BPF_K => pc += cond(a >= k),
            c if c == BPF_JMP | BPF_JSET | BPF_K => pc += cond(a & k != 0),
            _ => panic!("unexpected instruction {insn:?}"),
        }
    }
}

fn parse(json: &str) -> LinuxSeccomp {
    serde_json::from_str(json).expect("test profile parses")
}

fn build(json: &str) -> Filter {
    let filter = compile(&parse(json)).expect("test profile compiles");
    verify(filter.program());
    filter
}

/// The number of `name` in `abi`, found by a linear scan so that the model
/// does not share the compiler's lookup.
fn nr(abi: Abi, name: &str) -> u32 {
    abi.table()
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, nr)| *nr)
        .unwrap_or_else(|| panic!("{name} has no number in {abi:?}"))
}

fn x86_64(name: &str) -> Data {
    Data::new(AUDIT_ARCH_X86_64, nr(Abi::X86_64, name))
}
fn i386(name: &str) -> Data {
    Data::new(AUDIT_ARCH_I386, nr(Abi::I386, name))
}
fn x32(name: &str) -> Data {
    Data::new(AUDIT_ARCH_X86_64, nr(Abi::X32, name))
}

/// The profile semantics written out directly (see the module docs).
fn model(profile: &LinuxSeccomp, data: &Data) -> u32 {
    let mut abis: Vec<Abi> = profile
        .architectures()
        .iter()
        .flatten()
        .map(|a| Abi::from_arch(*a).expect("supported arch"))
        .collect();
    if abis.is_empty() {
        abis.push(Abi::X86_64);
    }
    let default = action_value(profile.default_action(), profile.default_errno_ret(), "")
        .expect("valid default");
    let abi = match data.arch {
        AUDIT_ARCH_I386 => Abi::I386,
        AUDIT_ARCH_X86_64 if data.nr == u32::MAX && !abis.contains(&Abi::X32) => return default,
        AUDIT_ARCH_X86_64 if data.nr & X32_SYSCALL_BIT != 0 => Abi::X32,
        AUDIT_ARCH_X86_64 => Abi::X86_64,
        _ => return KILL_THREAD,
    };
    if !abis.contains(&abi) {
        return KILL_THREAD;
    }
    let name = abi
        .table()
        .iter()
        .find(|(_, n)| *n == data.nr)
        .map(|(n, _)| *n);
    let Some(name) = name else { return default };
    for entry in profile.syscalls().iter().flatten() {
        if !entry.names().iter().any(|n| n == name) {
            continue;
        }
        let all = entry.args().iter().flatten().all(|arg| {
            let mut a = data.args[arg.index()];
            let mut v = arg.value();
            let mut v2 = arg.value_two().unwrap_or(0);
            if abi != Abi::X86_64 {
                (a, v, v2) = (a & 0xffff_ffff, v & 0xffff_ffff, v2 & 0xffff_ffff);
            }
            match arg.op() {
                LinuxSeccompOperator::ScmpCmpNe => a != v,
                LinuxSeccompOperator::ScmpCmpLt => a < v,
                LinuxSeccompOperator::ScmpCmpLe => a <= v,
                LinuxSeccompOperator::ScmpCmpEq => a == v,
                LinuxSeccompOperator::ScmpCmpGe => a >= v,
                LinuxSeccompOperator::ScmpCmpGt => a > v,
                LinuxSeccompOperator::ScmpCmpMaskedEq => a & v == v2,
            }
        });
        if all {
            return action_value(entry.action(), entry.errno_ret(), "").expect("valid action");
        }
    }
    default
}

/// Runs `cases` through the compiled program and through the model.
fn check(json: &str, cases: &[(Data, u32)]) {
    let profile = parse(json);
    let filter = build(json);
    for (data, want) in cases {
        let got = run(filter.program(), data);
        assert_eq!(got, *want, "program for {data:?}");
        assert_eq!(model(&profile, data), *want, "model for {data:?}");
    }
}

#[test]
fn default_actions() {
    let cases = [
        (r#""SCMP_ACT_ALLOW""#, "", ALLOW),
        (r#""SCMP_ACT_ERRNO""#, "", errno(1)),
        (
            r#""SCMP_ACT_ERRNO""#,
            r#", "defaultErrnoRet": 38"#,
            errno(38),
        ),
        (r#""SCMP_ACT_KILL""#, "", KILL_THREAD),
        (r#""SCMP_ACT_KILL_THREAD""#, "", KILL_THREAD),
        (r#""SCMP_ACT_KILL_PROCESS""#, "", KILL_PROCESS),
        (r#""SCMP_ACT_TRAP""#, "", libc::SECCOMP_RET_TRAP),
        (r#""SCMP_ACT_TRACE""#, "", libc::SECCOMP_RET_TRACE | 1),
        (
            r#""SCMP_ACT_TRACE""#,
            r#", "defaultErrnoRet": 7"#,
            libc::SECCOMP_RET_TRACE | 7,
        ),
        (r#""SCMP_ACT_LOG""#, "", libc::SECCOMP_RET_LOG),
        // errnoRet means nothing to ALLOW.
        (r#""SCMP_ACT_ALLOW""#, r#", "defaultErrnoRet": 5"#, ALLOW),
    ];
    for (action, extra, want) in cases {
        let json = format!(r#"{{"defaultAction": {action}{extra}}}"#);
        check(
            &json,
            &[
                (x86_64("read"), want),
                (x86_64("mkdirat").arg(0, u64::MAX), want),
                (Data::new(AUDIT_ARCH_X86_64, 999), want),
                // Only the native ABI is listed by default.
                (i386("read"), KILL_THREAD),
                (x32("read"), KILL_THREAD),
                (Data::new(0xc000_00b7, 0), KILL_THREAD),
            ],
        );
    }
}

#[test]
fn syscall_actions_and_errno() {
    check(
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"},
                {"names": ["reboot"], "action": "SCMP_ACT_KILL"},
                {"names": ["kexec_load"], "action": "SCMP_ACT_TRAP"},
                {"names": ["bpf"], "action": "SCMP_ACT_LOG"},
                {"names": ["acct"], "action": "SCMP_ACT_TRACE", "errnoRet": 4242},
                {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 0},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 3}
            ]
        }"#,
        &[
            (x86_64("mkdirat"), errno(99)),
            (x86_64("mkdir"), errno(99)),
            (x86_64("getcwd"), errno(1)),
            (x86_64("ptrace"), KILL_PROCESS),
            (x86_64("reboot"), KILL_THREAD),
            (x86_64("kexec_load"), libc::SECCOMP_RET_TRAP),
            (x86_64("bpf"), libc::SECCOMP_RET_LOG),
            (x86_64("acct"), libc::SECCOMP_RET_TRACE | 4242),
            (x86_64("chroot"), errno(0)),
            (x86_64("read"), ALLOW),
            (x86_64("write"), ALLOW),
            (Data::new(AUDIT_ARCH_X86_64, 5000), ALLOW),
            (Data::new(AUDIT_ARCH_X86_64, u32::MAX), ALLOW),
        ],
    );
}

/// One profile per operator, with values whose high and low words differ.
#[test]
fn argument_operators() {
    let v: u64 = 0x0000_0005_8000_0010;
    let probes = [
        0,
        v - 1,
        v,
        v + 1,
        v & 0xffff_ffff,
        v | 0xffff_ffff,
        (v & !0xffff_ffff) - 1,
        v + (1 << 32),
        v - (1 << 32),
        0xffff_ffff_0000_0010,
        u64::MAX,
    ];
    type Op = (&'static str, fn(u64, u64) -> bool);
    let ops: [Op; 6] = [
        ("SCMP_CMP_EQ", |a, v| a == v),
        ("SCMP_CMP_NE", |a, v| a != v),
        ("SCMP_CMP_LT", |a, v| a < v),
        ("SCMP_CMP_LE", |a, v| a <= v),
        ("SCMP_CMP_GT", |a, v| a > v),
        ("SCMP_CMP_GE", |a, v| a >= v),
    ];
    for (op, f) in ops {
        for index in [0, 3, 5] {
            let json = format!(
                r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{{"names": ["ioctl"],
                "action": "SCMP_ACT_ERRNO", "errnoRet": 1234,
                "args": [{{"index": {index}, "value": {v}, "op": "{op}"}}]}}]}}"#
            );
            let cases: Vec<(Data, u32)> = probes
                .iter()
                .map(|&a| {
                    let want = if f(a, v) { errno(1234) } else { ALLOW };
                    (x86_64("ioctl").arg(index, a), want)
                })
                .chain([(x86_64("read").arg(index, v), ALLOW)])
                .collect();
            check(&json, &cases);
        }
    }
}

#[test]
fn masked_eq() {
    // value is the mask, valueTwo the datum (runc, crun).
    check(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["fcntl"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 18446744069414584335, "valueTwo": 4294967298, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["dup3"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 255, "valueTwo": 4294967296, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]}"#,
        &[
            (x86_64("clone").arg(0, 0x11), ALLOW),
            (x86_64("clone").arg(0, libc::CLONE_NEWUSER as u64), errno(1)),
            (x86_64("clone").arg(0, 0xffff_0000_0000_0011), ALLOW),
            // mask 0xffffffff_0000000f, datum 0x1_00000002
            (x86_64("fcntl").arg(1, 0x1_0000_0002), ALLOW),
            (x86_64("fcntl").arg(1, 0x1_ffff_fff2), ALLOW),
            (x86_64("fcntl").arg(1, 0x2_0000_0002), errno(1)),
            (x86_64("fcntl").arg(1, 0x1_0000_0003), errno(1)),
            // The datum has bits outside the mask: never matches.
            (x86_64("dup3").arg(2, 0x1_0000_0000), errno(1)),
            (x86_64("dup3").arg(2, 0), errno(1)),
            // A missing valueTwo is 0.
            (x86_64("socket").arg(0, 2), ALLOW),
            (x86_64("socket").arg(0, 3), errno(1)),
        ],
    );
}

#[test]
fn args_are_anded_and_entries_tried_in_order() {
    check(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 10,
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                      {"index": 2, "value": 64, "valueTwo": 64, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 11,
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"}]},
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 12},
            {"names": ["openat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["close"], "action": "SCMP_ACT_ERRNO", "errnoRet": 14}
        ]}"#,
        &[
            (x86_64("openat").arg(0, 3).arg(2, 64 | 2), errno(10)),
            (x86_64("openat").arg(0, 3).arg(2, 2), errno(11)),
            (x86_64("openat").arg(0, 4).arg(2, 64), errno(12)),
            (x86_64("openat").arg(0, 4), errno(12)),
            (x86_64("close"), ALLOW),
        ],
    );
}

#[test]
fn unknown_names_are_skipped() {
    check(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
            {"names": ["no_such_syscall", "another_one"], "action": "SCMP_ACT_KILL"},
            {"names": ["no_such_syscall", "getpid"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl", "socketcall"], "action": "SCMP_ACT_ALLOW"}
        ]}"#,
        &[
            (x86_64("getpid"), ALLOW),
            (i386("getpid"), ALLOW),
            // arch_prctl exists on both, socketcall only on i386.
            (x86_64("arch_prctl"), ALLOW),
            (i386("socketcall"), ALLOW),
            (i386("arch_prctl"), ALLOW),
            (x86_64("read"), errno(1)),
        ],
    );
}

#[test]
fn architectures() {
    let json = r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["read", "socket", "rt_sigaction"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 4294967298, "op": "SCMP_CMP_EQ"}]}
        ]}"#;
    check(
        json,
        &[
            (x86_64("read"), ALLOW),
            (i386("read"), ALLOW),
            (x32("read"), ALLOW),
            (x86_64("socket"), ALLOW),
            (i386("socket"), ALLOW),
            (x32("socket"), ALLOW),
            // x32 has its own rt_sigaction (512 | X32 bit), the x86_64 number
            // with the x32 bit is a different, unlisted syscall.
            (x32("rt_sigaction"), ALLOW),
            (
                Data::new(
                    AUDIT_ARCH_X86_64,
                    nr(Abi::X86_64, "rt_sigaction") | X32_SYSCALL_BIT,
                ),
                errno(38),
            ),
            (x86_64("rt_sigaction"), ALLOW),
            // i386 read is 3, x86_64 3 is close.
            (Data::new(AUDIT_ARCH_X86_64, 3), errno(38)),
            // 64-bit compare on x86_64, low half only on i386 and x32.
            (x86_64("write").arg(0, 0x1_0000_0002), ALLOW),
            (x86_64("write").arg(0, 2), errno(38)),
            (x32("write").arg(0, 0x1_0000_0002), ALLOW),
            (x32("write").arg(0, 2), ALLOW),
            (x32("write").arg(0, 3), errno(38)),
            (i386("write").arg(0, 2), ALLOW),
            (i386("write").arg(0, 3), errno(38)),
            (Data::new(0xc000_00b7, 63), KILL_THREAD),
            (Data::new(AUDIT_ARCH_X86_64, u32::MAX), errno(38)),
        ],
    );
    // x86_64 alone: x32 and i386 calls are killed, nr -1 gets the default.
    let native = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NATIVE"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#;
    check(
        native,
        &[
            (x86_64("read"), ALLOW),
            (x86_64("mkdir"), errno(1)),
            (x32("read"), KILL_THREAD),
            (x32("mkdir"), KILL_THREAD),
            (Data::new(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT - 1), ALLOW),
            (Data::new(AUDIT_ARCH_X86_64, u32::MAX), ALLOW),
            (Data::new(AUDIT_ARCH_X86_64, u32::MAX - 1), KILL_THREAD),
            (i386("read"), KILL_THREAD),
        ],
    );
    // x32 alone: x86_64 calls are killed.
    let x32_only = r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#;
    check(
        x32_only,
        &[
            (x32("read"), ALLOW),
            (x32("mkdir"), errno(1)),
            (x86_64("read"), KILL_THREAD),
            (Data::new(AUDIT_ARCH_X86_64, u32::MAX), ALLOW),
        ],
    );
}

#[test]
fn bad_profiles() {
    let unparsable = [
        r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "ALLOW"}]}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}"#,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}"#,
    ];
    for json in unparsable {
        let err = serde_json::from_str::<LinuxSeccomp>(json).expect_err(json);
        assert!(
            err.to_string().contains("unknown variant") || err.is_data(),
            "{json}: {err}"
        );
    }

    let bad = [
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_AARCH64"]}"#,
            "seccomp architecture SCMP_ARCH_AARCH64 is not supported (only x86_64, x86 and x32 are)",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}"#,
            "errnoRet 65536 for defaultAction does not fit the 16-bit SECCOMP_RET_DATA field",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_TRACE", "errnoRet": 100000}]}"#,
            "errnoRet 100000 for read,write does not fit the 16-bit SECCOMP_RET_DATA field",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "argument index 6 for syscall read is out of range (must be below 6)",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}"#,
            "SCMP_ACT_NOTIFY cannot be the seccomp default action",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#,
            "SCMP_ACT_NOTIFY is used for syscall mount but listenerPath is not set",
        ),
    ];
    for (json, want) in bad {
        let err = compile(&parse(json)).expect_err(json);
        assert_eq!(err.to_string(), want);
    }

    // errnoRet on an action that ignores it is fine, as are all-unknown names
    // for NOTIFY without a listener path (no rule, no listener).
    build(
        r#"{"defaultAction": "SCMP_ACT_KILL", "defaultErrnoRet": 70000, "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 99999},
            {"names": ["not_a_syscall"], "action": "SCMP_ACT_NOTIFY"}]}"#,
    );
}

#[test]
fn flags_and_listener() {
    let f = build(
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]}"#,
    );
    assert_eq!(
        f.flags(),
        libc::SECCOMP_FILTER_FLAG_LOG
            | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            | libc::SECCOMP_FILTER_FLAG_TSYNC
    );
    assert!(!f.needs_listener());

    let json = r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}"#;
    check(
        json,
        &[
            (x86_64("mount"), libc::SECCOMP_RET_USER_NOTIF),
            (x86_64("read"), ALLOW),
        ],
    );
    let f = build(json);
    assert!(f.needs_listener());
    assert_eq!(
        f.flags(),
        libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
    );
    assert_eq!(
        f.install(),
        Err(Errno::EINVAL),
        "install refuses listener filters"
    );
}

/// Names of Docker's default profile are close to every syscall: allow all
/// x86_64 names but a few, with Docker-style conditional entries.
fn docker_like() -> String {
    let denied = [
        "mount",
        "umount2",
        "reboot",
        "kexec_load",
        "ptrace",
        "bpf",
        "clone",
        "personality",
        "socket",
    ];
    let mut names: Vec<String> = syscalls::X86_64
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !denied.contains(n))
        .map(|n| format!("\"{n}\""))
        .collect();
    // Names some other ABI has, or none.
    names.extend(
        [
            "\"socketcall\"",
            "\"_llseek\"",
            "\"arm_fadvise64_64\"",
            "\"s390_pci_mmio_read\"",
        ]
        .map(String::from),
    );
    let n = names.len();
    assert!(n > 350, "{n} names");
    format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {{"names": [{}], "action": "SCMP_ACT_ALLOW"}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}}]}},
            {{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22, "args": [{{"index": 0, "value": 40, "op": "SCMP_CMP_EQ"}}]}},
            {{"names": ["socket"], "action": "SCMP_ACT_ALLOW"}},
            {{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "args": [{{"index": 0, "value": 16, "op": "SCMP_CMP_GT"}}, {{"index": 0, "value": 4294967296, "op": "SCMP_CMP_LT"}}]}}
        ]}}"#,
        names.join(", ")
    )
}

#[test]
fn docker_sized_profile() {
    let json = docker_like();
    let profile = parse(&json);
    let filter = build(&json);
    let len = filter.program().len();
    assert!(len < 400, "program is {len} instructions");

    let mut cases = Vec::new();
    for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
        let arch = if abi == Abi::I386 {
            AUDIT_ARCH_I386
        } else {
            AUDIT_ARCH_X86_64
        };
        for &(_, nr) in abi.table() {
            for arg in [
                0,
                8,
                16,
                17,
                40,
                0x1_0000_0000,
                0xffff_ffff,
                libc::CLONE_NEWNS as u64,
            ] {
                cases.push(Data::new(arch, nr).arg(0, arg));
            }
        }
        for nr in [
            0,
            1000,
            2000,
            X32_SYSCALL_BIT - 1,
            X32_SYSCALL_BIT,
            X32_SYSCALL_BIT + 1000,
            u32::MAX,
        ] {
            cases.push(Data::new(arch, nr));
        }
    }
    for data in &cases {
        assert_eq!(
            run(filter.program(), data),
            model(&profile, data),
            "{data:?}"
        );
    }
    assert_eq!(run(filter.program(), &x86_64("mount")), errno(1));
    assert_eq!(run(filter.program(), &i386("socketcall")), ALLOW);
    assert_eq!(
        run(filter.program(), &x86_64("socket").arg(0, 40)),
        errno(22)
    );
    assert_eq!(run(filter.program(), &i386("socket").arg(0, 2)), ALLOW);
    assert_eq!(run(filter.program(), &x86_64("ptrace").arg(0, 17)), ALLOW);
    // On i386 only the low halves are compared: "< 1 << 32" becomes "< 0".
    assert_eq!(run(filter.program(), &i386("ptrace").arg(0, 17)), errno(1));
    assert_eq!(
        run(filter.program(), &x86_64("ptrace").arg(0, 0x1_0000_0011)),
        errno(1)
    );
}

/// A tiny deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Random profiles, including ones long enough to need JA trampolines,
/// compared with the model on random and boundary inputs.
#[test]
fn random_profiles_match_the_model() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let names = [
        "read",
        "write",
        "openat",
        "close",
        "ioctl",
        "mmap",
        "socket",
        "clone",
        "socketcall",
        "_llseek",
        "no_such",
        "rt_sigaction",
        "getpid",
        "futex",
    ];
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
        "SCMP_ACT_TRAP",
    ];
    let ops = [
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ];
    let values = [
        0u64,
        1,
        2,
        0xff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0001,
        0xffff_ffff_0000_0000,
        u64::MAX,
    ];
    let arch_lists = [
        "",
        r#", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]"#,
        r#", "architectures": ["SCMP_ARCH_X86"]"#,
        r#", "architectures": ["SCMP_ARCH_X32", "SCMP_ARCH_NATIVE"]"#,
    ];
    let mut longest = 0;
    let mut trampolines = 0;
    for round in 0..300 {
        let mut entries = Vec::new();
        // Some rounds are big enough to exceed 8-bit jump offsets.
        let count = if round % 10 == 0 {
            60
        } else {
            1 + rng.below(8)
        };
        for _ in 0..count {
            let mut entry_names = Vec::new();
            for _ in 0..1 + rng.below(3) {
                entry_names.push(format!("\"{}\"", rng.pick(&names)));
            }
            let mut args = Vec::new();
            for _ in 0..rng.below(4) {
                args.push(format!(
                    r#"{{"index": {}, "value": {}, "valueTwo": {}, "op": "{}"}}"#,
                    rng.below(3),
                    rng.pick(&values),
                    rng.pick(&values),
                    rng.pick(&ops)
                ));
            }
            entries.push(format!(
                r#"{{"names": [{}], "action": "{}", "errnoRet": {}, "args": [{}]}}"#,
                entry_names.join(","),
                rng.pick(&actions),
                rng.below(5000),
                args.join(",")
            ));
        }
        let json = format!(
            r#"{{"defaultAction": "{}"{}, "syscalls": [{}]}}"#,
            rng.pick(&actions),
            rng.pick(&arch_lists),
            entries.join(",")
        );
        let profile = parse(&json);
        let filter = build(&json);
        longest = longest.max(filter.program().len());
        trampolines += filter
            .program()
            .iter()
            .filter(|i| i.code == BPF_JMP | BPF_JA)
            .count();
        for _ in 0..200 {
            let abi = *rng.pick(&[Abi::X86_64, Abi::I386, Abi::X32]);
            let arch = if abi == Abi::I386 {
                AUDIT_ARCH_I386
            } else {
                AUDIT_ARCH_X86_64
            };
            let name = *rng.pick(&names);
            let nr = abi.number(name).unwrap_or(X32_SYSCALL_BIT - 1);
            let mut data = Data::new(arch, nr);
            for i in 0..3 {
                let v = *rng.pick(&values);
                data.args[i] = match rng.below(4) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    2 => rng.next(),
                    _ => v,
                };
            }
            assert_eq!(
                run(filter.program(), &data),
                model(&profile, &data),
                "round {round}: {data:?}\n{json}"
            );
        }
    }
    assert!(longest > 300, "longest program only {longest} instructions");
    assert!(trampolines > 0, "no program needed a JA trampoline");
}

#[test]
fn too_long_program_is_rejected() {
    let mut entries = Vec::new();
    for (name, _) in syscalls::X86_64.iter().take(300) {
        entries.push(format!(
            r#"{{"names": ["{name}"], "action": "SCMP_ACT_ERRNO", "args": [{{"index": 1, "value": 7, "op": "SCMP_CMP_GT"}}, {{"index": 2, "value": 7, "op": "SCMP_CMP_LT"}}]}}"#
        ));
    }
    let json = format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"], "syscalls": [{}]}}"#,
        entries.join(",")
    );
    match compile(&parse(&json)) {
        Err(Error::ProgramTooLong { len, max }) => assert!(len > max && max == 4096),
        other => panic!("expected ProgramTooLong, got {other:?}"),
    }
}

/// Conditional jumps around the 8-bit offset limit, on either side.
#[test]
fn builder_trampolines_reach_far_targets() {
    for far in [250, 253, 254, 255, 256, 257, 300, 1000] {
        for (yes_far, no_far) in [(true, false), (false, true), (true, true)] {
            let mut b = bpf::Builder::default();
            let far_ret = b.ret(1);
            // Distinct returns, so none is shared, put `far` instructions
            // between the jump and its far target.
            for k in 0..far {
                b.ret(1000 + k);
            }
            let near_ret = b.ret(2);
            let (yes, no) = (
                if yes_far { far_ret } else { near_ret },
                if no_far { far_ret } else { near_ret },
            );
            let (want_yes, want_no) = (if yes_far { 1 } else { 2 }, if no_far { 1 } else { 2 });
            let jump = b.jump(Cond::Eq, 7, yes, no);
            b.load(OFFSET_NR, jump);
            let prog = b.finish();
            verify(&prog);
            let at = |nr| run(&prog, &Data::new(AUDIT_ARCH_X86_64, nr));
            assert_eq!(at(7), want_yes, "far {far}, {yes_far} {no_far}");
            assert_eq!(at(8), want_no, "far {far}, {yes_far} {no_far}");
        }
    }
}

/// oci-spec 0.8 does not know SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (later
/// versions do): such a profile fails to parse. When oci-spec is bumped,
/// map the flag in compile() to libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
/// and replace this test.
#[test]
fn wait_killable_recv_needs_a_newer_oci_spec() {
    let json = r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#;
    let err = serde_json::from_str::<LinuxSeccomp>(json).expect_err("unknown to oci-spec 0.8");
    assert!(err.to_string().contains("unknown variant"), "{err}");
}

#[test]
fn syscall_tables_are_sorted_and_spot_on() {
    for abi in [Abi::X86_64, Abi::I386, Abi::X32] {
        let table = abi.table();
        assert!(
            table
                .windows(2)
                .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes()),
            "{abi:?} table is not sorted by name"
        );
        assert!(
            table.len() > 300,
            "{abi:?} table has {} entries",
            table.len()
        );
        for (name, nr) in table {
            assert_eq!(abi.number(name), Some(*nr), "{abi:?} {name}");
        }
    }
    assert_eq!(Abi::X86_64.number("read"), Some(0));
    assert_eq!(Abi::X86_64.number("getcwd"), Some(libc::SYS_getcwd as u32));
    assert_eq!(Abi::I386.number("read"), Some(3));
    assert_eq!(Abi::I386.number("socket"), Some(359));
    assert_eq!(Abi::X32.number("read"), Some(X32_SYSCALL_BIT));
    assert_eq!(Abi::X32.number("rt_sigaction"), Some(X32_SYSCALL_BIT + 512));
    assert_eq!(Abi::X86_64.number("socketcall"), None);
    assert_eq!(Abi::X86_64.number(""), None);
}

/// A profile whose program needs JA trampolines: many syscalls with
/// argument rules, all x86_64.
fn long_jumps() -> String {
    let entries: Vec<String> = syscalls::X86_64
        .iter()
        .filter(|(n, _)| !["getcwd", "getpid", "exit", "exit_group", "getpgid"].contains(n))
        .take(120)
        .map(|(n, _)| {
            format!(
                r#"{{"names": ["{n}"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
                "args": [{{"index": 1, "value": 4294967311, "op": "SCMP_CMP_EQ"}}]}}"#
            )
        })
        .collect();
    format!(
        r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{},
            {{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99}}]}}"#,
        entries.join(",")
    )
}

#[test]
fn long_programs_use_trampolines() {
    let json = long_jumps();
    let filter = build(&json);
    let prog = filter.program();
    assert!(prog.len() > 600, "{} instructions", prog.len());
    assert!(prog.iter().any(|i| i.code == BPF_JMP | BPF_JA));
    check(
        &json,
        &[
            (x86_64("getcwd"), errno(99)),
            (x86_64("getpid"), ALLOW),
            (x86_64("accept").arg(1, 0x1_0000_000f), errno(3)),
            (x86_64("accept").arg(1, 0xf), ALLOW),
        ],
    );
}

/// Real-kernel tests: the filter is installed in a forked child, which only
/// makes raw syscalls (no allocation after fork in this multi-threaded test
/// binary) and reports through its exit status.
mod kernel {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};
    use std::os::fd::AsRawFd;

    /// Exit code of a child whose setup failed.
    const SETUP_FAILED: i32 = 200;

    /// Forks; the child sets no_new_privs, installs `filter`, and exits with
    /// the errno of `call` (0 if it succeeded).
    fn in_child(filter: &Filter, call: impl Fn() -> libc::c_long) -> WaitStatus {
        // SAFETY: the child only makes syscalls and _exits.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: prctl and _exit with plain integer arguments.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        libc::_exit(SETUP_FAILED);
                    }
                    if filter.needs_listener() {
                        // Dropping the listener: notified calls get ENOSYS.
                        if filter.install_with_listener().map(drop).is_err() {
                            libc::_exit(SETUP_FAILED);
                        }
                    } else if filter.install().is_err() {
                        libc::_exit(SETUP_FAILED + 1);
                    }
                    let code = if call() < 0 { Errno::last_raw() } else { 0 };
                    libc::_exit(code);
                }
            }
            ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
        }
    }

    fn exit_code(status: WaitStatus) -> i32 {
        match status {
            WaitStatus::Exited(_, code) => code,
            other => panic!("child did not exit: {other:?}"),
        }
    }

    fn mkdirat() -> libc::c_long {
        // SAFETY: a raw syscall on a static C string.
        unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, c"/".as_ptr(), 0o755) }
    }
    fn getcwd() -> libc::c_long {
        let mut buf = [0u8; 256];
        // SAFETY: the kernel writes at most buf.len() bytes to buf.
        unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) }
    }
    fn getpgid(pid: u64) -> libc::c_long {
        // SAFETY: a raw syscall with an integer argument.
        unsafe { libc::syscall(libc::SYS_getpgid, pid) }
    }

    const PROFILE: &str = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 99},
        {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
         "args": [{"index": 0, "value": 4294967296, "op": "SCMP_CMP_GE"}]},
        {"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}
    ]}"#;

    #[test]
    fn denied_call_gets_configured_errno() {
        let filter = build(PROFILE);
        assert_eq!(exit_code(in_child(&filter, mkdirat)), 99);
        // Without the filter, mkdirat("/") fails with EEXIST.
        let none = build(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
        assert_eq!(exit_code(in_child(&none, mkdirat)), libc::EEXIST);
    }

    #[test]
    fn allowed_call_succeeds() {
        let filter = build(PROFILE);
        assert_eq!(exit_code(in_child(&filter, getcwd)), 0);
    }

    #[test]
    fn argument_filter_matches_only_its_arguments() {
        let filter = build(PROFILE);
        // The kernel truncates pid_t to 32 bits, the filter sees all 64.
        assert_eq!(exit_code(in_child(&filter, || getpgid(0x1_0000_0000))), 77);
        assert_eq!(exit_code(in_child(&filter, || getpgid(0))), 0);
        assert_eq!(
            exit_code(in_child(&filter, || getpgid(0x7fff_fff0))),
            libc::ESRCH
        );
    }

    #[test]
    fn kill_process_kills_with_sigsys() {
        let filter = build(PROFILE);
        // SAFETY: a raw syscall without arguments.
        let status = in_child(&filter, || unsafe { libc::syscall(libc::SYS_getppid) });
        assert!(
            matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _)),
            "{status:?}"
        );
    }

    #[test]
    fn default_errno_applies_to_unlisted_calls() {
        let filter = build(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 123, "syscalls": [
                {"names": ["exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        // Exit codes are 8 bits, so the errno must be below 256 here.
        assert_eq!(exit_code(in_child(&filter, getcwd)), 123);
    }

    #[test]
    fn notify_without_a_listener_gets_enosys() {
        let filter = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        assert_eq!(exit_code(in_child(&filter, getcwd)), libc::ENOSYS);
        assert_eq!(exit_code(in_child(&filter, || getpgid(0))), 0);
    }

    /// Turns a raw kernel return (`-errno` on failure) into the libc
    /// convention `in_child` expects.
    fn libc_convention(ret: i64) -> libc::c_long {
        if ret < 0 {
            // SAFETY: errno is thread-local and always valid to write.
            unsafe { *libc::__errno_location() = i32::try_from(-ret).unwrap_or(i32::MAX) };
            return -1;
        }
        ret
    }

    /// Makes an i386 syscall from 64-bit code through `int 0x80`: the kernel
    /// reports it with AUDIT_ARCH_I386 (needs CONFIG_IA32_EMULATION).
    fn i386_call(nr: u32) -> libc::c_long {
        let ret: u64;
        // SAFETY: getpid-like calls without pointer arguments; int 0x80
        // clobbers only rax (the result) and r8-r11 are preserved.
        unsafe {
            std::arch::asm!("int 0x80", inlateout("rax") u64::from(nr) => ret, options(nostack));
        }
        // The i386 result is 32 bits wide.
        libc_convention(i64::from(ret as u32 as i32))
    }

    /// Makes a syscall with the x32 bit set in the number: seccomp sees it
    /// even where the kernel has no x32 support and would return ENOSYS.
    fn x32_call(nr: u32) -> libc::c_long {
        let ret: i64;
        // SAFETY: getpid-like calls without arguments; `syscall` clobbers
        // rcx and r11.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") i64::from(nr) => ret,
                out("rcx") _,
                out("r11") _,
                options(nostack),
            );
        }
        libc_convention(ret)
    }

    fn killed_by_sigsys(status: WaitStatus) -> bool {
        matches!(status, WaitStatus::Signaled(_, Signal::SIGSYS, _))
    }

    #[test]
    fn docker_sized_profile_loads() {
        let filter = build(&docker_like());
        assert_eq!(exit_code(in_child(&filter, getcwd)), 0);
        // SAFETY: personality with an integer argument changes only the
        // child's execution domain.
        let personality = |p: u64| move || unsafe { libc::syscall(libc::SYS_personality, p) };
        assert_eq!(exit_code(in_child(&filter, personality(0xffff_ffff))), 0);
        assert_eq!(
            exit_code(in_child(&filter, personality(0x0040_0000))),
            libc::EPERM
        );
    }

    #[test]
    fn long_program_loads() {
        let filter = build(&long_jumps());
        assert_eq!(exit_code(in_child(&filter, getcwd)), 99);
        assert_eq!(exit_code(in_child(&filter, || getpgid(0))), 0);
    }

    #[test]
    fn i386_calls_use_i386_numbers() {
        let getpid = nr(Abi::I386, "getpid");
        let filter = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 55}]}"#,
        );
        assert_eq!(exit_code(in_child(&filter, || i386_call(getpid))), 55);
        // Other i386 calls are unaffected.
        let getppid = nr(Abi::I386, "getppid");
        assert_eq!(exit_code(in_child(&filter, || i386_call(getppid))), 0);
        // The native getpid is denied too; the native call numbered like the
        // i386 getpid (20, writev) is not, and fails on its own with EBADF.
        // SAFETY: raw syscalls; writev gets no iovecs.
        let x86_64_getpid = || unsafe { libc::syscall(libc::SYS_getpid) };
        assert_eq!(exit_code(in_child(&filter, x86_64_getpid)), 55);
        assert_eq!(getpid, libc::SYS_writev as u32);
        // SAFETY: writev with a count of 0 reads no iovec, so the null pointer is
        // never dereferenced; the descriptor -1 only makes it fail.
        let writev = || unsafe { libc::syscall(libc::SYS_writev, -1, std::ptr::null::<u8>(), 0) };
        assert_eq!(exit_code(in_child(&filter, writev)), libc::EBADF);
    }

    #[test]
    fn unlisted_abis_are_killed() {
        let filter = build(r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
        let getpid = nr(Abi::I386, "getpid");
        assert!(killed_by_sigsys(in_child(&filter, || i386_call(getpid))));
        let getpid = nr(Abi::X32, "getpid");
        assert!(killed_by_sigsys(in_child(&filter, || x32_call(getpid))));
        // Native calls still go through.
        let code = exit_code(in_child(&filter, || {
            // SAFETY: a raw syscall without arguments.
            unsafe { libc::syscall(libc::SYS_getpid) }
        }));
        assert_eq!(code, 0);
    }

    #[test]
    fn x32_calls_use_x32_rules() {
        let filter = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 56}]}"#,
        );
        let getpid = nr(Abi::X32, "getpid");
        assert_eq!(exit_code(in_child(&filter, || x32_call(getpid))), 56);
    }

    /// The full SCMP_ACT_NOTIFY flow: the child sends its listener over a
    /// unix socket as the runtime will to `listenerPath`, and the parent
    /// answers the notified call.
    #[test]
    fn notify_listener_receives_the_call() {
        let filter = build(
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_NOTIFY"}]}"#,
        );
        let mut socks = [0; 2];
        // SAFETY: socketpair writes two fds into `socks`.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, socks.as_mut_ptr()) };
        assert_eq!(rc, 0, "socketpair: {}", Errno::last());
        let [ours, theirs] = socks;

        // SAFETY: the child only makes syscalls and _exits.
        let child = match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: raw syscalls on stack data; no allocation.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                        libc::_exit(SETUP_FAILED);
                    }
                    let Ok(Some(listener)) = filter.install_with_listener() else {
                        libc::_exit(SETUP_FAILED + 1);
                    };
                    if send_fd(theirs, listener.as_raw_fd()) != 0 {
                        libc::_exit(SETUP_FAILED + 2);
                    }
                    drop(listener);
                    let code = if getcwd() < 0 { Errno::last_raw() } else { 0 };
                    libc::_exit(code);
                }
            }
            ForkResult::Parent { child } => child,
        };
        // Kill the child if anything below fails, or it blocks forever.
        struct Reap(nix::unistd::Pid);
        impl Drop for Reap {
            fn drop(&mut self) {
                let _ = nix::sys::signal::kill(self.0, Signal::SIGKILL);
                let _ = waitpid(self.0, None);
            }
        }
        let reap = Reap(child);

        let listener = recv_fd(ours);
        // SAFETY: the kernel requires a zeroed struct and fills it.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: ioctl on the listener with a properly sized struct.
        let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
        assert_eq!(rc, 0, "NOTIF_RECV: {}", Errno::last());
        assert_eq!(notif.data.nr, libc::SYS_getcwd as i32);
        assert_eq!(notif.data.arch, AUDIT_ARCH_X86_64);
        let mut resp = libc::seccomp_notif_resp {
            id: notif.id,
            val: 0,
            error: -97,
            flags: 0,
        };
        // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp, which `resp`
        // is, alive across the call; `listener` is the open notification descriptor.
        let rc = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
        assert_eq!(rc, 0, "NOTIF_SEND: {}", Errno::last());

        let status = waitpid(child, None).expect("waitpid");
        std::mem::forget(reap);
        assert_eq!(exit_code(status), 97);
        // SAFETY: closing fds this test owns.
        unsafe {
            libc::close(listener);
            libc::close(ours);
            libc::close(theirs);
        }
    }

    /// Sends `fd` with SCM_RIGHTS using only stack memory.
    fn send_fd(sock: RawFd, fd: RawFd) -> i32 {
        #[repr(C)]
        struct Control {
            hdr: libc::cmsghdr,
            fd: RawFd,
            _pad: u32,
        }
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        // SAFETY: plain C structs, zero is a valid value.
        let mut control: Control = unsafe { std::mem::zeroed() };
        control.hdr.cmsg_level = libc::SOL_SOCKET;
        control.hdr.cmsg_type = libc::SCM_RIGHTS;
        // SAFETY: CMSG_LEN only computes a size.
        control.hdr.cmsg_len = unsafe { libc::CMSG_LEN(4) } as usize;
        control.fd = fd;
        // SAFETY: msghdr is plain C data (integers and pointers); all zeroes, null
        // pointers and zero lengths, is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = (&mut control as *mut Control).cast();
        msg.msg_controllen = std::mem::size_of::<Control>();
        // SAFETY: msg points to live stack data.
        if unsafe { libc::sendmsg(sock, &msg, 0) } < 0 {
            return -1;
        }
        0
    }

    fn recv_fd(sock: RawFd) -> RawFd {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 8];
        // SAFETY: plain C struct, zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: msg points to live stack data.
        let n = unsafe { libc::recvmsg(sock, &mut msg, 0) };
        assert_eq!(n, 1, "recvmsg: {}", Errno::last());
        // SAFETY: the kernel filled `control`; CMSG_* walk within it.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            assert!(!cmsg.is_null(), "no control message");
            assert_eq!((*cmsg).cmsg_type, libc::SCM_RIGHTS);
            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>())
        }
    }
}
