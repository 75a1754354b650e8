//! `modelswitch install|uninstall`: the gateway as a service that starts
//! at boot — a systemd unit on Linux (system, or `--user`), a launchd
//! plist on macOS (a LaunchDaemon, or a `--user` LaunchAgent). The unit
//! and plist texts are pure functions of [`Service`]; writing them and
//! telling systemd or launchd is the thin shell around them.

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

pub const UNIT_NAME: &str = "modelswitch.service";
pub const LAUNCHD_LABEL: &str = "dev.modelswitch.gateway";
/// Added to `shutdown_grace` for the stop timeout: the gateway exits at
/// most a second or two past its grace; the service manager must not kill
/// it before.
const STOP_MARGIN: Duration = Duration::from_secs(15);
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Linux,
    Macos,
}

impl Platform {
    pub fn this() -> Self {
        if cfg!(target_os = "macos") {
            Self::Macos
        } else {
            Self::Linux
        }
    }
}

#[derive(Args)]
pub struct InstallArgs {
    /// A per-user service (systemd --user, ~/Library/LaunchAgents) instead of a system one.
    #[arg(long)]
    user: bool,
    /// Write every file under DIR (packaging, tests); systemctl/launchctl are not run.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Replace an installed unit or plist.
    #[arg(long)]
    force: bool,
    /// linux (systemd) or macos (launchd); default: this machine's.
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

impl InstallArgs {
    /// `--root`: nothing outside it is touched (no workspace is made).
    pub fn writes_under_root(&self) -> bool {
        self.root.is_some()
    }
}

#[derive(Args)]
pub struct UninstallArgs {
    /// The per-user service.
    #[arg(long)]
    user: bool,
    /// Remove the files under DIR; systemctl/launchctl are not run.
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// linux (systemd) or macos (launchd); default: this machine's.
    #[arg(long, value_enum)]
    platform: Option<Platform>,
}

/// What the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The gateway binary, absolute.
    pub binary: PathBuf,
    /// `--workspace DIR` or `--config FILE`, absolute.
    pub source: Runs,
    /// Where the gateway writes (systemd's `ReadWritePaths`): the
    /// workspace and the config's data directories, or for `--config` the
    /// data directories only. Each may be missing when the unit starts.
    pub writable: Vec<PathBuf>,
    /// systemd's `EnvironmentFile` (optional): the providers' keys for the
    /// config's `api_key_env`.
    pub env_file: PathBuf,
    /// Where launchd sends stdout and stderr.
    pub logs: PathBuf,
    pub shutdown_grace: Duration,
    pub user: bool,
    /// A system unit's `User=`: the owner of the workspace (or config
    /// file) when that is not root, so the service does not run as root
    /// over a user's files.
    pub run_as: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    Workspace(PathBuf),
    Config(PathBuf),
}

impl Service {
    fn args(&self) -> Vec<String> {
        let (flag, path) = match &self.source {
            Runs::Workspace(p) => ("--workspace", p),
            Runs::Config(p) => ("--config", p),
        };
        vec![
            self.binary.display().to_string(),
            flag.into(),
            path.display().to_string(),
            "run".into(),
        ]
    }

    fn stop_timeout(&self) -> Duration {
        self.shutdown_grace.saturating_add(STOP_MARGIN)
    }
}

/// A path for `ReadWritePaths` or `EnvironmentFile`: `%` starts a
/// specifier there, `$` is not special (it is only in `Exec*` lines).
fn systemd_path(s: &str) -> String {
    s.replace('%', "%%")
}

/// One entry of a space-separated `ReadWritePaths` list, `-` prefixed (a
/// missing directory is skipped, not a 226/NAMESPACE failure), quoted when
/// it holds a space or a quote (the list is unquoted word by word, before
/// the prefix is read).
fn rw_entry(path: &Path) -> String {
    let s = format!("-{}", systemd_path(&path.display().to_string()));
    if s.chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// A systemd word: quoted when it holds what would split or expand it.
fn systemd_word(s: &str) -> String {
    // `%` starts a specifier and `$` a variable in ExecStart, even quoted.
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'))
    {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// The systemd unit.
pub fn systemd_unit(s: &Service) -> String {
    let exec: Vec<String> = s.args().iter().map(|a| systemd_word(a)).collect();
    let wanted_by = if s.user {
        "default.target"
    } else {
        "multi-user.target"
    };
    // Without the data paths (a --config that did not parse at install),
    // no line: the file system stays read-only rather than guessed at.
    let rw = if s.writable.is_empty() {
        String::new()
    } else {
        let paths: Vec<String> = s.writable.iter().map(|p| rw_entry(p)).collect();
        format!("ReadWritePaths={}\n", paths.join(" "))
    };
    let run_as = match s.run_as {
        Some(uid) if !s.user => {
            format!("# The owner of the workspace (or config): not root.\nUser={uid}\n")
        }
        _ => String::new(),
    };
    format!(
        "# Written by `modelswitch install`; `modelswitch uninstall` removes it.\n\
         [Unit]\n\
         Description=ModelSwitch LLM gateway\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         {run_as}\
         # The providers' keys (OPENAI_API_KEY=... lines, a 0600 file); optional.\n\
         EnvironmentFile=-{env}\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         LimitNOFILE=65536\n\
         # SIGTERM drains: requests in flight get [server] shutdown_grace.\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec={stop}\n\
         NoNewPrivileges=true\n\
         PrivateTmp=true\n\
         # The whole file system is read-only but the workspace (config edits\n\
         # from the admin UI) and the key store's and the logs' directories.\n\
         ProtectSystem=strict\n\
         {rw}\
         \n\
         [Install]\n\
         WantedBy={wanted_by}\n",
        exec = exec.join(" "),
        stop = s.stop_timeout().as_secs(),
        env = systemd_path(&s.env_file.display().to_string()),
    )
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The launchd property list.
pub fn launchd_plist(s: &Service) -> String {
    let args: String = s
        .args()
        .iter()
        .map(|a| format!("\t\t<string>{}</string>\n", xml(a)))
        .collect();
    let log = |name: &str| xml(&s.logs.join(name).display().to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t<string>{LAUNCHD_LABEL}</string>\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         {args}\
         \t</array>\n\
         \t<key>RunAtLoad</key>\n\
         \t<true/>\n\
         \t<key>KeepAlive</key>\n\
         \t<dict>\n\
         \t\t<key>SuccessfulExit</key>\n\
         \t\t<false/>\n\
         \t</dict>\n\
         \t<key>ExitTimeOut</key>\n\
         \t<integer>{stop}</integer>\n\
         \t<key>SoftResourceLimits</key>\n\
         \t<dict>\n\
         \t\t<key>NumberOfFiles</key>\n\
         \t\t<integer>65536</integer>\n\
         \t</dict>\n\
         \t<key>StandardOutPath</key>\n\
         \t<string>{out}</string>\n\
         \t<key>StandardErrorPath</key>\n\
         \t<string>{err}</string>\n\
         </dict>\n\
         </plist>\n",
        stop = s.stop_timeout().as_secs(),
        out = log("gateway.out.log"),
        err = log("gateway.err.log"),
    )
}

/// Where the unit or plist goes, before any `--root`.
pub fn service_path(
    platform: Platform,
    user: bool,
    home: Option<&Path>,
) -> Result<PathBuf, String> {
    let home = || {
        home.map(Path::to_path_buf)
            .ok_or_else(|| "HOME is not set: a --user service lives under it".to_owned())
    };
    Ok(match (platform, user) {
        (Platform::Linux, false) => PathBuf::from("/etc/systemd/system").join(UNIT_NAME),
        (Platform::Linux, true) => home()?.join(".config/systemd/user").join(UNIT_NAME),
        (Platform::Macos, false) => {
            PathBuf::from("/Library/LaunchDaemons").join(format!("{LAUNCHD_LABEL}.plist"))
        }
        (Platform::Macos, true) => home()?
            .join("Library/LaunchAgents")
            .join(format!("{LAUNCHD_LABEL}.plist")),
    })
}

/// `path` under `root`, when given.
pub fn rooted(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_owned(),
    }
}

/// `[server] shutdown_grace` as written, read leniently (the providers'
/// secrets need not be in the installing shell's environment), within the
/// 1s..1h the gateway accepts (a huge value must not overflow the stop
/// timeout).
fn shutdown_grace(doc: Option<&toml::Table>) -> Duration {
    doc.and_then(|doc| {
        let g = doc.get("server")?.get("shutdown_grace")?.as_str()?;
        humantime_serde::re::humantime::parse_duration(g).ok()
    })
    .unwrap_or(DEFAULT_GRACE)
    .clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// The directories the gateway writes, from the config read leniently:
/// the SQLite store's (unless the backend is postgres), the access log's
/// and the conversation log's, relative ones against `dir` (the config's
/// directory). None when a value has the wrong type.
pub fn data_dirs(doc: &toml::Table, dir: &Path) -> Option<Vec<PathBuf>> {
    let text = |table: &str, key: &str| -> Option<Option<String>> {
        match doc.get(table).and_then(|t| t.get(key)) {
            None => Some(None),
            Some(toml::Value::String(v)) if !v.is_empty() => Some(Some(v.clone())),
            Some(_) => None,
        }
    };
    let parent_of = |file: &str| {
        let p = dir.join(file);
        p.parent().map_or_else(|| dir.to_owned(), Path::to_path_buf)
    };
    let mut dirs = Vec::new();
    if text("storage", "backend")?.as_deref() != Some("postgres") {
        let db = text("storage", "sqlite_path")?.unwrap_or_else(|| "modelswitch.db".into());
        dirs.push(parent_of(&db));
    }
    if let Some(file) = text("logging", "access_file")? {
        dirs.push(parent_of(&file));
    }
    let conversations = text("logging", "dir")?.unwrap_or_else(|| "conversations".into());
    dirs.push(dir.join(conversations));
    let mut unique: Vec<PathBuf> = Vec::new();
    for d in dirs {
        if !unique.contains(&d) {
            unique.push(d);
        }
    }
    Some(unique)
}

/// `ReadWritePaths` for a workspace: the workspace (the admin UI rewrites
/// its config.toml) and whatever data directory lies outside it.
fn workspace_writable(root: &Path, data: Option<Vec<PathBuf>>) -> Vec<PathBuf> {
    let mut paths = vec![root.to_owned()];
    paths.extend(
        data.unwrap_or_default()
            .into_iter()
            .filter(|d| !d.starts_with(root)),
    );
    paths
}

/// The owner of `path` when it is not root, for a system unit's `User=`.
fn owner(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.uid())
        .filter(|&uid| uid != 0)
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// The service for `source` (absolute paths).
pub fn service_for(source: &super::workspace::Source, user: bool) -> Result<Service, String> {
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| format!("cannot find this binary's path: {e}"))?;
    let cwd = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    let config = cwd.join(source.config());
    let dir = config
        .parent()
        .map_or_else(|| cwd.clone(), Path::to_path_buf);
    let doc = std::fs::read_to_string(&config)
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok());
    let data = doc.as_ref().and_then(|d| data_dirs(d, &dir));
    let (runs, writable, env_file, logs, owned) = match source {
        super::workspace::Source::Workspace(l) => (
            Runs::Workspace(l.root.clone()),
            workspace_writable(&l.root, data),
            l.root.join("env"),
            l.logs.clone(),
            l.root.clone(),
        ),
        super::workspace::Source::File(_) => {
            if data.is_none() {
                eprintln!(
                    "note: {} could not be read, so the unit makes no directory writable; \
                     `install --force` again once it parses",
                    config.display()
                );
            }
            let data = data.unwrap_or_default();
            if data.contains(&dir) {
                eprintln!(
                    "note: the unit makes {} writable: the config's store or logs are \
                     there (relative paths resolve against it); give them absolute paths \
                     elsewhere (/var/lib/modelswitch) to keep it read-only",
                    dir.display()
                );
            }
            (
                Runs::Config(config.clone()),
                data,
                dir.join("modelswitch.env"),
                dir,
                config.clone(),
            )
        }
    };
    Ok(Service {
        binary,
        shutdown_grace: shutdown_grace(doc.as_ref()),
        source: runs,
        writable,
        env_file,
        logs,
        user,
        run_as: if user { None } else { owner(&owned) },
    })
}

/// Runs `cmd`, saying what ran; its failure is the install's.
fn run_cmd(cmd: &[&str]) -> Result<(), String> {
    println!("running: {}", cmd.join(" "));
    let status = Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cmd[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", cmd.join(" ")))
    }
}

fn uid() -> String {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "0".into())
}

/// launchd's domain for the service.
fn launchd_domain(user: bool) -> String {
    if user {
        format!("gui/{}", uid())
    } else {
        "system".into()
    }
}

pub fn install(source: &super::workspace::Source, args: InstallArgs) -> ExitCode {
    let platform = args.platform.unwrap_or_else(Platform::this);
    let result = (|| -> Result<(), String> {
        let service = service_for(source, args.user)?;
        let path = rooted(
            args.root.as_deref(),
            &service_path(platform, args.user, home().as_deref())?,
        );
        if path.exists() && !args.force {
            return Err(format!(
                "{} exists: `modelswitch uninstall` first, or --force to replace it",
                path.display()
            ));
        }
        let text = match platform {
            Platform::Linux => systemd_unit(&service),
            Platform::Macos => launchd_plist(&service),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
        if args.root.is_some() {
            return Ok(());
        }
        let p = path.display().to_string();
        match (platform, args.user) {
            (Platform::Linux, user) => {
                let scope: &[&str] = if user { &["--user"] } else { &[] };
                let systemctl = |verb: &[&str]| -> Result<(), String> {
                    let cmd: Vec<&str> = ["systemctl"]
                        .iter()
                        .chain(scope)
                        .chain(verb)
                        .copied()
                        .collect();
                    run_cmd(&cmd)
                };
                systemctl(&["daemon-reload"])?;
                systemctl(&["enable", "--now", UNIT_NAME])?;
                if args.force {
                    // `enable --now` leaves a running service on its old
                    // unit: the replaced one takes effect on a restart.
                    systemctl(&["restart", UNIT_NAME])?;
                }
                Ok(())
            }
            (Platform::Macos, user) => {
                let domain = launchd_domain(user);
                if args.force {
                    // A loaded older plist must go before the new one loads.
                    let _ =
                        run_cmd(&["launchctl", "bootout", &format!("{domain}/{LAUNCHD_LABEL}")]);
                }
                run_cmd(&["launchctl", "bootstrap", &domain, &p])
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

pub fn uninstall(args: UninstallArgs) -> ExitCode {
    let platform = args.platform.unwrap_or_else(Platform::this);
    let result = (|| -> Result<(), String> {
        let path = rooted(
            args.root.as_deref(),
            &service_path(platform, args.user, home().as_deref())?,
        );
        if !path.exists() {
            return Err(format!("{} is not installed", path.display()));
        }
        if args.root.is_none() {
            // Stopped first: the unit must exist for systemctl to stop it.
            let stopped = match (platform, args.user) {
                (Platform::Linux, false) => run_cmd(&["systemctl", "disable", "--now", UNIT_NAME]),
                (Platform::Linux, true) => {
                    run_cmd(&["systemctl", "--user", "disable", "--now", UNIT_NAME])
                }
                (Platform::Macos, user) => run_cmd(&[
                    "launchctl",
                    "bootout",
                    &format!("{}/{LAUNCHD_LABEL}", launchd_domain(user)),
                ]),
            };
            if let Err(e) = stopped {
                eprintln!("{e} (removing the file anyway)");
            }
        }
        std::fs::remove_file(&path)
            .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        println!("removed {}", path.display());
        if args.root.is_none() && platform == Platform::Linux {
            let user: &[&str] = if args.user { &["--user"] } else { &[] };
            let cmd: Vec<&str> = ["systemctl"]
                .into_iter()
                .chain(user.iter().copied())
                .chain(["daemon-reload"])
                .collect();
            run_cmd(&cmd)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// The installed service's state, for `status`: where it is and what its
/// manager says, or none when neither a system nor a user one is installed.
pub fn service_state(platform: Platform) -> Option<String> {
    let home = home();
    for user in [false, true] {
        let Ok(path) = service_path(platform, user, home.as_deref()) else {
            continue;
        };
        if !path.exists() {
            continue;
        }
        let state = match platform {
            Platform::Linux => {
                let mut cmd = Command::new("systemctl");
                if user {
                    cmd.arg("--user");
                }
                cmd.args(["is-active", UNIT_NAME])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                    .unwrap_or_else(|e| format!("unknown (systemctl: {e})"))
            }
            Platform::Macos => Command::new("launchctl")
                .args([
                    "print",
                    &format!("{}/{LAUNCHD_LABEL}", launchd_domain(user)),
                ])
                .output()
                .map(|o| launchd_state(&String::from_utf8_lossy(&o.stdout)))
                .unwrap_or_else(|e| format!("unknown (launchctl: {e})")),
        };
        let scope = if user { "user" } else { "system" };
        return Some(format!("{state} ({scope} service, {})", path.display()));
    }
    None
}

/// `state = running` from `launchctl print`.
fn launchd_state(print: &str) -> String {
    print
        .lines()
        .find_map(|l| l.trim().strip_prefix("state = "))
        .unwrap_or("not loaded")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(user: bool) -> Service {
        Service {
            binary: "/usr/local/bin/modelswitch".into(),
            source: Runs::Workspace("/home/ops/my ws".into()),
            writable: vec!["/home/ops/my ws".into(), "/var/lib/ms 50%".into()],
            env_file: "/home/ops/my ws/env".into(),
            logs: "/home/ops/my ws/logs".into(),
            shutdown_grace: Duration::from_secs(30),
            user,
            run_as: Some(1000),
        }
    }

    /// `key=value` lines of an INI text, comments skipped.
    fn ini(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('['))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn get<'a>(kv: &'a [(String, String)], k: &str) -> &'a str {
        kv.iter().find(|(key, _)| key == k).map_or("", |(_, v)| v)
    }

    #[test]
    fn the_unit_runs_the_workspace_with_hardening_that_leaves_it_writable() {
        let text = systemd_unit(&service(false));
        let kv = ini(&text);
        assert_eq!(
            get(&kv, "ExecStart"),
            "/usr/local/bin/modelswitch --workspace \"/home/ops/my ws\" run"
        );
        assert_eq!(get(&kv, "Restart"), "on-failure");
        assert_eq!(get(&kv, "LimitNOFILE"), "65536");
        assert_eq!(get(&kv, "KillSignal"), "SIGTERM");
        assert_eq!(get(&kv, "TimeoutStopSec"), "45");
        assert_eq!(get(&kv, "NoNewPrivileges"), "true");
        assert_eq!(get(&kv, "ProtectSystem"), "strict");
        assert_eq!(
            get(&kv, "ReadWritePaths"),
            "\"-/home/ops/my ws\" \"-/var/lib/ms 50%%\""
        );
        assert_eq!(get(&kv, "EnvironmentFile"), "-/home/ops/my ws/env");
        assert_eq!(get(&kv, "User"), "1000");
        assert_eq!(get(&kv, "PrivateTmp"), "true");
        assert_eq!(get(&kv, "WantedBy"), "multi-user.target");
        let user = ini(&systemd_unit(&service(true)));
        assert_eq!(get(&user, "WantedBy"), "default.target");
        // A user unit runs as its user already.
        assert_eq!(get(&user, "User"), "");
        // No data paths known: no ReadWritePaths line at all.
        let mut s = service(false);
        s.writable.clear();
        assert!(!systemd_unit(&s).contains("ReadWritePaths"));
    }

    #[test]
    fn exec_start_quotes_a_binary_with_a_space_and_keeps_dollars_literal() {
        let mut s = service(false);
        s.binary = "/opt/model switch/bin/modelswitch".into();
        s.source = Runs::Config("/etc/ms/$x%.toml".into());
        assert_eq!(
            get(&ini(&systemd_unit(&s)), "ExecStart"),
            "\"/opt/model switch/bin/modelswitch\" --config /etc/ms/$$x%%.toml run"
        );
        // In the path settings `$` stays as it is.
        s.env_file = "/etc/ms/$x%.env".into();
        assert_eq!(
            get(&ini(&systemd_unit(&s)), "EnvironmentFile"),
            "-/etc/ms/$x%%.env"
        );
    }

    #[test]
    fn the_grace_is_clamped_so_the_stop_timeout_cannot_overflow() {
        let doc = |g: &str| {
            toml::from_str::<toml::Table>(&format!("[server]\nshutdown_grace = \"{g}\"\n")).unwrap()
        };
        assert_eq!(shutdown_grace(Some(&doc("10s"))), Duration::from_secs(10));
        assert_eq!(
            shutdown_grace(Some(&doc("18446744073709551615s"))),
            Duration::from_secs(3600)
        );
        assert_eq!(shutdown_grace(Some(&doc("0s"))), Duration::from_secs(1));
        assert_eq!(shutdown_grace(Some(&doc("soon"))), DEFAULT_GRACE);
        assert_eq!(shutdown_grace(None), DEFAULT_GRACE);
        let mut s = service(false);
        s.shutdown_grace = Duration::MAX;
        assert_eq!(s.stop_timeout(), Duration::MAX);
    }

    #[test]
    fn the_writable_paths_come_from_the_config() {
        let doc = |t: &str| toml::from_str::<toml::Table>(t).unwrap();
        let etc = Path::new("/etc");
        // The workspace template: all inside the workspace.
        let ws = Path::new("/w");
        let template = doc(crate::cli::workspace::TEMPLATE);
        assert_eq!(
            data_dirs(&template, ws).unwrap(),
            [
                PathBuf::from("/w/data"),
                "/w/logs".into(),
                "/w/logs/conversations".into()
            ]
        );
        assert_eq!(
            workspace_writable(ws, data_dirs(&template, ws)),
            [PathBuf::from("/w")]
        );
        // A config in /etc with its data elsewhere: never /etc itself.
        let etc_conf = doc("[storage]\nsqlite_path = \"/var/lib/ms/ms.db\"\n\
             [logging]\naccess_file = \"/var/log/ms/access.log\"\ndir = \"/var/log/ms/conv\"\n");
        assert_eq!(
            data_dirs(&etc_conf, etc).unwrap(),
            [
                PathBuf::from("/var/lib/ms"),
                "/var/log/ms".into(),
                "/var/log/ms/conv".into()
            ]
        );
        // Postgres: no SQLite directory.
        let pg = doc("[storage]\nbackend = \"postgres\"\n[logging]\ndir = \"/var/log/ms\"\n");
        assert_eq!(data_dirs(&pg, etc).unwrap(), [PathBuf::from("/var/log/ms")]);
        // A data path outside the workspace is added to it.
        assert_eq!(
            workspace_writable(ws, data_dirs(&etc_conf, ws)),
            [
                PathBuf::from("/w"),
                "/var/lib/ms".into(),
                "/var/log/ms".into(),
                "/var/log/ms/conv".into()
            ]
        );
        // A wrong type: unknown, the caller falls back.
        assert_eq!(data_dirs(&doc("[storage]\nsqlite_path = 3\n"), etc), None);
        assert_eq!(workspace_writable(ws, None), [PathBuf::from("/w")]);
    }

    #[test]
    fn systemd_words_are_quoted_and_escaped() {
        assert_eq!(systemd_word("/a/b"), "/a/b");
        assert_eq!(systemd_word("/a b"), "\"/a b\"");
        assert_eq!(systemd_word("/a\"b"), "\"/a\\\"b\"");
        assert_eq!(systemd_word("/50%"), "/50%%");
        assert_eq!(systemd_word("/$HOME"), "/$$HOME");
        assert_eq!(rw_entry(Path::new("/a/b")), "-/a/b");
        assert_eq!(rw_entry(Path::new("/a b")), "\"-/a b\"");
        assert_eq!(rw_entry(Path::new("/50%/$x")), "-/50%%/$x");
    }

    #[test]
    fn the_plist_names_the_label_the_arguments_and_the_logs() {
        let mut s = service(true);
        s.source = Runs::Config("/etc/ms/<a&b>.toml".into());
        let text = launchd_plist(&s);
        assert!(text.starts_with("<?xml version=\"1.0\""));
        assert!(text.contains("<string>dev.modelswitch.gateway</string>"));
        assert!(text.contains(
            "<string>--config</string>\n\t\t<string>/etc/ms/&lt;a&amp;b&gt;.toml</string>"
        ));
        assert!(text.contains("<key>RunAtLoad</key>\n\t<true/>"));
        assert!(text.contains("<string>/home/ops/my ws/logs/gateway.err.log</string>"));
        assert!(text.contains("<key>ExitTimeOut</key>\n\t<integer>45</integer>"));
    }

    #[test]
    fn paths_per_platform_and_scope_under_a_root() {
        let home = Some(Path::new("/home/ops"));
        let at = |p, u| service_path(p, u, home).unwrap();
        assert_eq!(
            at(Platform::Linux, false),
            Path::new("/etc/systemd/system/modelswitch.service")
        );
        assert_eq!(
            at(Platform::Linux, true),
            Path::new("/home/ops/.config/systemd/user/modelswitch.service")
        );
        assert_eq!(
            at(Platform::Macos, false),
            Path::new("/Library/LaunchDaemons/dev.modelswitch.gateway.plist")
        );
        assert_eq!(
            at(Platform::Macos, true),
            Path::new("/home/ops/Library/LaunchAgents/dev.modelswitch.gateway.plist")
        );
        assert!(service_path(Platform::Linux, true, None).is_err());
        assert_eq!(
            rooted(Some(Path::new("/tmp/r")), &at(Platform::Linux, false)),
            Path::new("/tmp/r/etc/systemd/system/modelswitch.service")
        );
    }

    #[test]
    fn launchd_state_is_read_from_print() {
        assert_eq!(
            launchd_state("gui/501/dev.modelswitch.gateway = {\n\tstate = running\n"),
            "running"
        );
        assert_eq!(launchd_state(""), "not loaded");
    }
}
