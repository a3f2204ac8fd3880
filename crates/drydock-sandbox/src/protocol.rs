//! Messages between the calling process and the sandbox init, over a `SOCK_SEQPACKET`
//! socketpair (message boundaries kept, writes from several processes never interleave).
//! Descriptors (the command's stdio) travel as `SCM_RIGHTS`.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::changes::Stub;
use crate::idmap::IdRange;
use crate::mounts::Inputs;
use crate::outcome::ExitStatus;
use crate::spec::Rlimit;

/// Largest message; bigger payloads (a config with large secrets) are sent in chunks.
const CHUNK: usize = 32 * 1024;

/// Everything the init needs; computed by the caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InitConfig {
    pub mounts: Inputs,
    pub userns: UsernsSetup,
    pub network_none: bool,
    pub hostname: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub user: Option<String>,
    pub cwd: String,
    pub caps: u64,
    pub no_new_privs: bool,
    pub seccomp: bool,
    pub rlimits: Vec<Rlimit>,
    pub cgroup_procs: Vec<PathBuf>,
    /// Where the host's binfmt_misc handlers are listed.
    pub binfmt_dir: PathBuf,
    /// Whether setgroups(2) is allowed (not in a single-id user namespace).
    pub setgroups: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum UsernsSetup {
    Off,
    /// The caller writes the maps (through newuidmap/newgidmap) when asked.
    ByCaller {
        uid_map: Vec<IdRange>,
        gid_map: Vec<IdRange>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToInit {
    /// Header of the config: total length; chunks follow.
    Config { len: usize },
    /// The id maps are written.
    Continue,
    /// Kill the process tree now.
    Kill,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromInit {
    /// The init entered its user namespace: write the maps for this pid, then send Continue.
    NeedIdMap {
        pid: i32,
    },
    /// PID 1 of the sandbox (host pid).
    Started {
        pid: i32,
    },
    /// Mount points created by the sandbox.
    Stubs(Vec<Stub>),
    Error {
        stage: String,
        message: String,
        errno: Option<i32>,
        foreign_arch: bool,
    },
    Exited(ExitStatus),
}

pub(crate) fn send_raw(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    loop {
        match sendmsg(
            sock,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message; `Ok(None)` at end of stream.
pub(crate) fn recv_raw(sock: BorrowedFd<'_>) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; CHUNK + 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        match recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(r) => break r.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(iter) = msg {
            fds.extend(iter);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    buf.truncate(n);
    Ok(Some((buf, fds)))
}

pub(crate) fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    send_raw(sock, &bytes, &[])
}

pub(crate) fn recv<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> std::io::Result<Option<T>> {
    match recv_raw(sock)? {
        None => Ok(None),
        Some((bytes, _)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
    }
}

/// Sends the config with the command's stdio descriptors.
pub(crate) fn send_config(
    sock: BorrowedFd<'_>,
    cfg: &InitConfig,
    stdio: [BorrowedFd<'_>; 3],
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(cfg).map_err(std::io::Error::other)?;
    let header =
        serde_json::to_vec(&ToInit::Config { len: bytes.len() }).map_err(std::io::Error::other)?;
    send_raw(sock, &header, &stdio)?;
    for chunk in bytes.chunks(CHUNK) {
        send_raw(sock, chunk, &[])?;
    }
    Ok(())
}

pub(crate) fn recv_config(sock: BorrowedFd<'_>) -> std::io::Result<(InitConfig, Vec<OwnedFd>)> {
    let eof = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "caller went away");
    let (header, fds) = recv_raw(sock)?.ok_or_else(eof)?;
    let ToInit::Config { len } = serde_json::from_slice(&header).map_err(std::io::Error::other)?
    else {
        return Err(std::io::Error::other("expected the config first"));
    };
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        let (chunk, _) = recv_raw(sock)?.ok_or_else(eof)?;
        bytes.extend_from_slice(&chunk);
    }
    let cfg = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
    Ok((cfg, fds))
}

/// A socketpair for the protocol (both ends close-on-exec).
pub(crate) fn pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mounts::RootSetup;
    use crate::spec::NetworkMode;
    use std::os::fd::AsFd;

    #[test]
    fn config_roundtrip_in_chunks_with_fds() {
        let (a, b) = pair().unwrap();
        let big = "x".repeat(200_000);
        let cfg = InitConfig {
            mounts: Inputs {
                root: RootSetup::Copy { dir: "/r".into() },
                merged: "/m".into(),
                stage: "/s".into(),
                mounts: vec![],
                hosts: big.clone(),
                resolv_conf: String::new(),
                hostname: String::new(),
                network: NetworkMode::None,
                tty_gid_mapped: true,
            },
            userns: UsernsSetup::Off,
            network_none: true,
            hostname: "h".into(),
            argv: vec!["true".into()],
            env: vec![],
            user: None,
            cwd: "/".into(),
            caps: 0,
            no_new_privs: true,
            seccomp: true,
            rlimits: vec![],
            cgroup_procs: vec![],
            binfmt_dir: "/proc/sys/fs/binfmt_misc".into(),
            setgroups: true,
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let t = std::thread::spawn(move || recv_config(b.as_fd()).unwrap());
        send_config(a.as_fd(), &cfg, [null.as_fd(), null.as_fd(), null.as_fd()]).unwrap();
        let (got, fds) = t.join().unwrap();
        assert_eq!(got.mounts.hosts, big);
        assert_eq!(fds.len(), 3);
    }
}
