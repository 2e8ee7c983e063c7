//! Loading and attaching the cgroup v2 device filter with bpf(2).
//!
//! cgroup v2 has no devices.allow/deny files; the device controller is a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup
//! (Documentation/admin-guide/cgroup-v2.rst, "Device controller").

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::devices::Insn;
use crate::error::{Error, Result};

// From linux/bpf.h.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The start of struct bpf_prog_info; the kernel fills at most `info_len` bytes.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
}

/// Issues one bpf(2) command. `T` must be one of the `#[repr(C)]` attribute
/// structs above; the kernel zero-fills the rest of `union bpf_attr`.
fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr points to a live, properly sized repr(C) struct whose
    // pointer fields (if any) reference buffers that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: fd was just returned by bpf(2) as a new descriptor we own.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd> {
    let code: Vec<u8> = prog.iter().flat_map(|i| i.encode()).collect();
    let license = CString::new("Apache-2.0").expect("no interior nul");
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..4].copy_from_slice(b"cais");
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => Ok(owned(fd)),
        Err(source) => {
            // Load again with the verifier log on, only to explain the failure.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = sys_bpf(BPF_PROG_LOAD, &mut attr) {
                // Not expected, but the descriptor must not leak.
                drop(owned(fd));
            }
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_owned();
            Err(Error::Bpf {
                op: "loading device program",
                path: dir.to_owned(),
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                },
                source,
            })
        }
    }
}

fn prog_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut info = ProgInfoHead::default();
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: &mut info as *mut ProgInfoHead as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.id)
}

/// Ids of the device programs attached to the cgroup `dir_fd`.
fn attached(dir_fd: &File) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Loads `prog` and attaches it to the cgroup directory `dir`, then detaches
/// device programs attached there before. Attaching first means the cgroup
/// is never without a filter during an update.
pub(crate) fn install_device_filter(dir: &Path, prog: &[Insn]) -> Result<()> {
    let bpf_err = |op: &'static str| {
        let path = dir.to_owned();
        move |source: io::Error| Error::Bpf {
            op,
            path,
            log: String::new(),
            source,
        }
    };
    let dir_fd = File::open(dir).map_err(bpf_err("opening cgroup directory"))?;
    let prog_fd = load(prog, dir)?;
    let new_id = prog_id(&prog_fd).map_err(bpf_err("reading program id"))?;
    let mut attach = AttachAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    sys_bpf(BPF_PROG_ATTACH, &mut attach).map_err(bpf_err("attaching device program"))?;
    for id in attached(&dir_fd).map_err(bpf_err("querying device programs"))? {
        if id == new_id {
            continue;
        }
        let mut get = GetFdByIdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old = match sys_bpf(BPF_PROG_GET_FD_BY_ID, &mut get) {
            Ok(fd) => owned(fd),
            // Detached concurrently: nothing left to do for it.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("opening old device program")(e)),
        };
        let mut detach = AttachAttr {
            target_fd: dir_fd.as_raw_fd() as u32,
            attach_bpf_fd: old.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match sys_bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("detaching old device program")(e)),
        }
    }
    Ok(())
}

/// Number of device programs attached directly to `dir`.
#[cfg(test)]
pub(crate) fn attached_count(dir: &Path) -> Result<usize> {
    let err = |op: &'static str| {
        let path = dir.to_owned();
        move |source| Error::Bpf {
            op,
            path,
            log: String::new(),
            source,
        }
    };
    let dir_fd = File::open(dir).map_err(err("opening cgroup directory"))?;
    Ok(attached(&dir_fd)
        .map_err(err("querying device programs"))?
        .len())
}
