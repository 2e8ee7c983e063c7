//! The sandbox image: a root filesystem holding one static program,
//! `/pause`, that sleeps in `pause(2)` forever. A pod's sandbox container
//! runs it to hold the pod's network, IPC and UTS namespaces while its
//! containers come and go. The program is a few machine instructions in a
//! hand-assembled ELF executable, so the image needs no registry, no
//! toolchain and no libc; the agent imports it through the engine API
//! (`POST /images/create?fromSrc=-`) the first time it needs it.
//!
//! It installs no signal handler: as pid 1 of its PID namespace it ignores
//! SIGTERM (signal(7), "the only signals that can be sent to process ID 1
//! are those for which init has explicitly installed signal handlers"), so
//! the agent stops sandboxes with SIGKILL.

use cais_client::Client;

use crate::error::{Error, Result};

/// The sandbox image's name; the tag changes when the program does.
pub const IMAGE: &str = "cais.local/pause:1";

/// The machine code of the loop, per architecture.
#[cfg(target_arch = "x86_64")]
const MACHINE: (u16, &[u8]) = (
    0x3e, // EM_X86_64
    &[
        0xb8, 0x22, 0x00, 0x00, 0x00, // mov eax, 34 (SYS_pause)
        0x0f, 0x05, // syscall
        0xeb, 0xf7, // jmp back to the mov (-9 bytes)
    ],
);

#[cfg(target_arch = "aarch64")]
const MACHINE: (u16, &[u8]) = (
    0xb7, // EM_AARCH64
    // aarch64 has no pause(2): ppoll(NULL, 0, NULL, NULL) waits the same way.
    &[
        0x00, 0x00, 0x80, 0xd2, // mov x0, #0
        0x01, 0x00, 0x80, 0xd2, // mov x1, #0
        0x02, 0x00, 0x80, 0xd2, // mov x2, #0
        0x03, 0x00, 0x80, 0xd2, // mov x3, #0
        0x28, 0x09, 0x80, 0xd2, // mov x8, #73 (SYS_ppoll)
        0x01, 0x00, 0x00, 0xd4, // svc #0
        0xfa, 0xff, 0xff, 0x17, // b back to the first mov (-6 instructions)
    ],
);

/// Where the one segment is loaded (the conventional base of a static
/// executable; any page-aligned address above `vm.mmap_min_addr` works).
const BASE: u64 = 0x40_0000;
const EHDR_SIZE: u16 = 64;
const PHDR_SIZE: u16 = 56;

/// The `/pause` executable: an ELF64 header, one `PT_LOAD` program header
/// mapping the whole file read+execute, then the code (elf(5)).
pub fn program() -> Vec<u8> {
    let (machine, code) = MACHINE;
    let header_len = u64::from(EHDR_SIZE + PHDR_SIZE);
    let total = header_len + code.len() as u64;
    let mut elf = Vec::with_capacity(total as usize);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&machine.to_le_bytes());
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + header_len).to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&PHDR_SIZE.to_le_bytes());
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: PF_R | PF_X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&total.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&total.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(code);
    elf
}

/// The image's root filesystem as a tar: `/pause`, mode 0755.
pub fn rootfs_tar() -> Result<Vec<u8>> {
    let program = program();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "pause", program.as_slice())
        .and_then(|()| builder.into_inner())
        .map_err(|source| Error::Io {
            what: "writing the sandbox image's tar".into(),
            source,
        })
}

/// Makes sure the engine has [`IMAGE`], importing it when missing.
pub fn ensure_image(engine: &Client) -> Result<()> {
    if engine.image_inspect_value(IMAGE).is_ok() {
        return Ok(());
    }
    let tar = rootfs_tar()?;
    let (repo, tag) = IMAGE.rsplit_once(':').unwrap_or((IMAGE, "latest"));
    let query = [
        ("fromSrc", "-".to_string()),
        ("repo", repo.to_string()),
        ("tag", tag.to_string()),
        ("changes", r#"CMD ["/pause"]"#.to_string()),
    ];
    let response = engine
        .image_import(&query, &mut tar.as_slice())
        .map_err(|source| Error::Engine {
            what: "importing the sandbox image".into(),
            source,
        })?;
    crate::runtime::drain_progress(response).map_err(|message| Error::Image {
        image: IMAGE.into(),
        message,
    })?;
    tracing::info!(image = IMAGE, "imported the sandbox image");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;
    use std::time::Duration;

    #[test]
    fn the_program_sleeps_until_killed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pause");
        std::fs::write(&path, program()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut child = Command::new(&path).spawn().expect("the kernel runs it");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            child.try_wait().expect("wait").is_none(),
            "still sleeping after 200 ms"
        );
        // SIGCONT interrupts pause(2); the loop goes back to sleep.
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill");
        std::thread::sleep(Duration::from_millis(100));
        assert!(
            child.try_wait().expect("wait").is_none(),
            "survives SIGCONT"
        );
        child.kill().expect("kill");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
    }

    #[test]
    fn the_tar_holds_one_executable() {
        let tar = rootfs_tar().expect("tar");
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                (
                    e.path().expect("path").display().to_string(),
                    e.header().mode().expect("mode"),
                    e.size(),
                )
            })
            .collect();
        assert_eq!(
            entries,
            vec![("pause".to_string(), 0o755, program().len() as u64)]
        );
    }
}
