fn main() -> std::process::ExitCode {
    keyhound::cli::main()
}
