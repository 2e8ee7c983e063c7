//! Classic BPF instructions and a back-to-front program builder.
//!
//! Seccomp filters are classic BPF (Documentation/networking/filter.rst,
//! Documentation/userspace-api/seccomp_filter.rst): only forward jumps,
//! conditional jump offsets are 8 bits, `JA` takes a 32-bit offset, and a
//! program may hold at most BPF_MAXINSNS (4096) instructions.
//!
//! The builder emits the program backwards, from its last instruction to its
//! first. Every jump target then already exists when the jump is written, so
//! offsets are known at once; a conditional jump whose target is more than 255
//! instructions away goes through a `JA` trampoline placed right after it.

use std::collections::HashMap;

// Instruction classes and modes from include/uapi/linux/bpf_common.h.
pub(super) const BPF_LD: u16 = 0x00;
pub(super) const BPF_ALU: u16 = 0x04;
pub(super) const BPF_JMP: u16 = 0x05;
pub(super) const BPF_RET: u16 = 0x06;
pub(super) const BPF_W: u16 = 0x00;
pub(super) const BPF_ABS: u16 = 0x20;
pub(super) const BPF_AND: u16 = 0x50;
pub(super) const BPF_JA: u16 = 0x00;
pub(super) const BPF_JEQ: u16 = 0x10;
pub(super) const BPF_JGT: u16 = 0x20;
pub(super) const BPF_JGE: u16 = 0x30;
pub(super) const BPF_K: u16 = 0x00;

/// The kernel's limit on the length of a classic BPF program
/// (include/uapi/linux/bpf_common.h).
pub(super) const BPF_MAXINSNS: usize = 4096;

/// One classic BPF instruction, laid out as the kernel's `struct sock_filter`
/// (include/uapi/linux/filter.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `struct sock_fprog` (include/uapi/linux/filter.h), the argument of
/// seccomp(SECCOMP_SET_MODE_FILTER).
#[repr(C)]
pub(super) struct SockFprog {
    pub len: u16,
    pub filter: *const Insn,
}

/// Conditional jump operations used by the compiler.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cond {
    Eq,
    Gt,
    Ge,
}

impl Cond {
    fn code(self) -> u16 {
        BPF_JMP
            | BPF_K
            | match self {
                Cond::Eq => BPF_JEQ,
                Cond::Gt => BPF_JGT,
                Cond::Ge => BPF_JGE,
            }
    }
}

/// A position in the program being built, counted from its end: the last
/// instruction is label 0. Labels stay valid while more instructions are
/// prepended.
pub(super) type Label = usize;

/// Builds a program back to front. See the module documentation.
#[derive(Default)]
pub(super) struct Builder {
    /// The program in reverse order: `rev[0]` is the last instruction.
    rev: Vec<Insn>,
    /// Where a `RET k` was last emitted, so nearby returns are shared.
    rets: HashMap<u32, Label>,
}

/// A shared `RET` further away than this is emitted again instead of reused:
/// a second copy costs one instruction, the same as the trampoline a
/// far-away target would need, and keeps the jumps short.
const RET_REUSE_DISTANCE: usize = 200;

impl Builder {
    /// The label the next emitted instruction will get.
    fn next_label(&self) -> Label {
        self.rev.len()
    }

    fn push(&mut self, insn: Insn) -> Label {
        self.rev.push(insn);
        self.rev.len() - 1
    }

    /// Distance a jump emitted now would have to `target`.
    fn offset_to(&self, target: Label) -> usize {
        // Targets are always already emitted, so `target < next_label()`.
        self.next_label() - target - 1
    }

    /// `RET k`, sharing a recent identical return when it is close enough.
    pub(super) fn ret(&mut self, k: u32) -> Label {
        if let Some(&label) = self.rets.get(&k) {
            if self.offset_to(label) <= RET_REUSE_DISTANCE {
                return label;
            }
        }
        let label = self.push(Insn {
            code: BPF_RET | BPF_K,
            jt: 0,
            jf: 0,
            k,
        });
        self.rets.insert(k, label);
        label
    }

    /// Makes `next` the instruction that follows the one emitted next, for
    /// instructions that fall through: `next` itself if it was the last one
    /// emitted, or a `JA` to it.
    fn fall_to(&mut self, next: Label) {
        if self.rev.len().checked_sub(1) != Some(next) {
            self.near(next, 0);
        }
    }

    /// `LD W ABS offset`, then `next`: loads 32 bits of `struct seccomp_data`.
    pub(super) fn load(&mut self, offset: u32, next: Label) -> Label {
        self.fall_to(next);
        self.push(Insn {
            code: BPF_LD | BPF_W | BPF_ABS,
            jt: 0,
            jf: 0,
            k: offset,
        })
    }

    /// `ALU AND K`, then `next`.
    pub(super) fn and(&mut self, mask: u32, next: Label) -> Label {
        self.fall_to(next);
        self.push(Insn {
            code: BPF_ALU | BPF_AND | BPF_K,
            jt: 0,
            jf: 0,
            k: mask,
        })
    }

    /// Returns a label the next instruction can reach with an offset of at
    /// most `limit` and that leads to `target`: `target` itself, or a new
    /// `JA` to it.
    fn near(&mut self, target: Label, limit: usize) -> Label {
        if self.offset_to(target) <= limit {
            return target;
        }
        let off = self.offset_to(target);
        self.push(Insn {
            code: BPF_JMP | BPF_JA,
            jt: 0,
            jf: 0,
            // Offsets are bounded by the program length, which compile()
            // checks against BPF_MAXINSNS; saturating keeps a runaway
            // program wrong-but-rejected rather than panicking here.
            k: u32::try_from(off).unwrap_or(u32::MAX),
        })
    }

    /// `JMP cond K`: goes to `yes` if `A cond k`, else to `no`.
    pub(super) fn jump(&mut self, cond: Cond, k: u32, yes: Label, no: Label) -> Label {
        if yes == no {
            return yes;
        }
        // The false target gets one spare step of range: a trampoline for the
        // true target, pushed after it, moves it one instruction further.
        let no = self.near(no, usize::from(u8::MAX) - 1);
        let yes = self.near(yes, usize::from(u8::MAX));
        let jt = u8::try_from(self.offset_to(yes)).expect("near() bounds the offset by 255");
        let jf = u8::try_from(self.offset_to(no)).expect("near() bounds the offset by 255");
        self.push(Insn {
            code: cond.code(),
            jt,
            jf,
            k,
        })
    }

    /// Number of instructions emitted so far.
    pub(super) fn len(&self) -> usize {
        self.rev.len()
    }

    /// The program in execution order: it starts with the instruction
    /// emitted last.
    pub(super) fn finish(mut self) -> Vec<Insn> {
        self.rev.reverse();
        self.rev
    }
}
