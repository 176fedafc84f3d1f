"""Restoration of old photos: the restore family (repair, faces, upscale), registered in models/engines.py."""
