"""Live stock: stock changes published on Redis after commit, served to pages as Server-Sent Events."""
