"""The Textual front end. Entry point: `jobtui.tui.app.run_tui(source)`."""
