# Sourced by setup.sh and test.sh: which Pythons the tests run on beside the machine's
# python3 (3.11, in .venv), and where to find them. These are the oldest and the newest
# hooktel supports; each gets its own virtualenv, .venv-VERSION.
OTHER_PYTHONS=(3.10 3.13)

# python_for VERSION: print an interpreter of that version, pyenv's or one on PATH. Neither
# Debian 12 nor uv (its Pythons come from a host this network does not reach) can supply
# one here, so pyenv's are what the development and CI machines use.
python_for() {
    local candidate
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}/versions/$1".*/bin/"python$1" \
        "$(command -v "python$1" || true)"; do
        if [ -x "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
