use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use drydock_oci::Reference;

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Removes names; the content goes at the next `drydock gc`.\n\nExamples:\n  drydock rmi busybox:latest\n  drydock rmi app:1 app:2"
)]
pub struct Args {
    /// Names to remove.
    #[arg(required = true)]
    references: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let store = crate::home::open_store()?;
    let mut failed = false;
    for r in &args.references {
        let reference = Reference::parse(r).with_context(|| format!("reference {r:?}"))?;
        match drydock_content::names::remove(&store, &reference)? {
            Some(d) => println!("Untagged: {} ({})", reference.familiar(), d.digest()),
            None => {
                eprintln!(
                    "error: no image {} in the local store",
                    reference.familiar()
                );
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
