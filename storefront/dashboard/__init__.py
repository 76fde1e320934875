"""The live sale dashboard's figures over the last hour."""
